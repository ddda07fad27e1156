//! Kubernetes' IP and CIDR libraries (`k8s.io/apiserver/pkg/cel/library/ip.go`, `cidr.go`):
//! `ip`, `isIP`, `ip.isCanonical`, `family`, `isUnspecified`, `isLoopback`,
//! `isLinkLocalMulticast`, `isLinkLocalUnicast`, `isGlobalUnicast`, `cidr`, `isCIDR`,
//! `containsIP`, `containsCIDR`, `ip()` of a CIDR, `prefixLength`, `masked` and `string`.
//! Addresses parse as Go's `netip.ParseAddr` reads them (no leading zeros in IPv4 octets), and,
//! as in Kubernetes, zones and IPv4-mapped IPv6 addresses are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::sig::*;
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::{Cidr, TypeName, Value};

pub(crate) fn register(r: &mut Registry) {
    let ip = || opaque(TypeName::Ip);
    let cidr = || opaque(TypeName::Cidr);
    r.global("ip", to_ip, &[(&[String], ip())]);
    r.global("isIP", is_ip, &[(&[String], Bool)]);
    r.global("ip.isCanonical", is_canonical, &[(&[String], Bool)]);
    r.member("family", family, &[(&[ip()], Int)]);
    for name in [
        "isUnspecified",
        "isLoopback",
        "isLinkLocalMulticast",
        "isLinkLocalUnicast",
        "isGlobalUnicast",
    ] {
        r.member(name, predicate, &[(&[ip()], Bool)]);
    }
    r.global(
        "string",
        to_string,
        &[(&[ip()], String), (&[cidr()], String)],
    );
    r.global("cidr", to_cidr, &[(&[String], cidr())]);
    r.global("isCIDR", is_cidr, &[(&[String], Bool)]);
    r.member(
        "containsIP",
        contains_ip,
        &[(&[cidr(), String], Bool), (&[cidr(), ip()], Bool)],
    );
    r.member(
        "containsCIDR",
        contains_cidr,
        &[(&[cidr(), String], Bool), (&[cidr(), cidr()], Bool)],
    );
    r.member("ip", cidr_ip, &[(&[cidr()], ip())]);
    r.member("prefixLength", prefix_length, &[(&[cidr()], Int)]);
    r.member("masked", masked, &[(&[cidr()], cidr())]);
}

/// Go's `netip.ParseAddr` with Kubernetes' refusals.
pub(crate) fn parse_ip(raw: &str) -> Result<IpAddr, std::string::String> {
    if raw.contains('%') {
        return Err(format!("IP address {raw:?} with zone value is not allowed"));
    }
    let addr: IpAddr = raw.parse().map_err(|_| {
        format!("IP Address {raw:?} parse error during conversion from string: ParseAddr({raw:?}): unable to parse IP")
    })?;
    if let IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
    }
    Ok(addr)
}

/// Go's `netip.ParsePrefix` with Kubernetes' refusals.
pub(crate) fn parse_cidr(raw: &str) -> Result<Cidr, std::string::String> {
    let fail = |why: &str| {
        format!(
            "network address parse error during conversion from string: network address parse error during conversion from string: netip.ParsePrefix({raw:?}): {why}"
        )
    };
    let Some((addr, bits)) = raw.rsplit_once('/') else {
        return Err(fail("no '/'"));
    };
    if addr.contains('%') {
        return Err(fail("IPv6 zones cannot be present in a prefix"));
    }
    let parsed: IpAddr = addr.parse().map_err(|_| fail("bad address"))?;
    let max = if parsed.is_ipv4() { 32 } else { 128 };
    let valid_bits = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && !(bits.len() > 1 && bits.starts_with('0'));
    let prefix: u8 = match bits.parse::<u16>() {
        Ok(b) if valid_bits && b <= max => b as u8,
        _ => return Err(fail(&format!("bad bits after slash: {bits:?}"))),
    };
    if let IpAddr::V6(v6) = parsed
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
    }
    Ok(Cidr {
        addr: parsed,
        prefix,
    })
}

fn string_arg<'v>(call: &Call<'_>, args: &'v [Value<'_>]) -> Result<&'v str, EvalError> {
    match &args[0] {
        Value::String(s) => Ok(s),
        _ => call.no_overload(args),
    }
}

fn to_ip<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args)?;
    parse_ip(s).map(Value::Ip).map_err(EvalError::message)
}

fn is_ip<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args)?;
    Ok(Value::Bool(parse_ip(s).is_ok()))
}

fn is_canonical<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args)?;
    let addr = parse_ip(s).map_err(EvalError::message)?;
    Ok(Value::Bool(addr.to_string() == s))
}

fn family<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Ip(IpAddr::V4(_)) => Ok(Value::Int(4)),
        Value::Ip(IpAddr::V6(_)) => Ok(Value::Int(6)),
        _ => call.no_overload(args),
    }
}

fn is_link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..2] == [169, 254],
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast(),
        IpAddr::V6(v6) => v6.octets()[0] == 0xff,
    }
}

/// Go's `netip.Addr` predicates.
fn predicate<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::Ip(ip) = &args[0] else {
        return call.no_overload(args);
    };
    let result = match call.function {
        "isUnspecified" => ip.is_unspecified(),
        "isLoopback" => ip.is_loopback(),
        "isLinkLocalMulticast" => match ip {
            IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
            IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
        },
        "isLinkLocalUnicast" => is_link_local_unicast(ip),
        "isGlobalUnicast" => {
            let broadcast = *ip == IpAddr::V4(Ipv4Addr::BROADCAST);
            !(ip.is_unspecified()
                || broadcast
                || ip.is_loopback()
                || is_multicast(ip)
                || is_link_local_unicast(ip))
        }
        _ => return call.no_overload(args),
    };
    Ok(Value::Bool(result))
}

fn to_string<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Ip(ip) => Ok(Value::string(ip.to_string())),
        Value::Cidr(c) => Ok(Value::string(format!("{}/{}", c.addr, c.prefix))),
        _ => call.no_overload(args),
    }
}

fn to_cidr<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args)?;
    parse_cidr(s).map(Value::Cidr).map_err(EvalError::message)
}

fn is_cidr<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = string_arg(call, args)?;
    Ok(Value::Bool(parse_cidr(s).is_ok()))
}

/// The address with the bits past the prefix cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

fn contains(cidr: &Cidr, ip: &IpAddr) -> bool {
    cidr.addr.is_ipv4() == ip.is_ipv4() && mask(*ip, cidr.prefix) == mask(cidr.addr, cidr.prefix)
}

fn contains_ip<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let ip = match &args[1] {
        Value::Ip(ip) => *ip,
        Value::String(s) => parse_ip(s).map_err(EvalError::message)?,
        _ => return call.no_overload(args),
    };
    let Value::Cidr(cidr) = &args[0] else {
        return call.no_overload(args);
    };
    Ok(Value::Bool(contains(cidr, &ip)))
}

fn contains_cidr<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let other = match &args[1] {
        Value::Cidr(c) => *c,
        Value::String(s) => parse_cidr(s).map_err(|e| {
            EvalError::message(format!(
                "network address parse error during conversion from string: {e}"
            ))
        })?,
        _ => return call.no_overload(args),
    };
    let Value::Cidr(cidr) = &args[0] else {
        return call.no_overload(args);
    };
    Ok(Value::Bool(
        cidr.prefix <= other.prefix && contains(cidr, &other.addr),
    ))
}

fn cidr_ip<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Cidr(c) => Ok(Value::Ip(c.addr)),
        _ => call.no_overload(args),
    }
}

fn prefix_length<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Cidr(c) => Ok(Value::Int(i64::from(c.prefix))),
        _ => call.no_overload(args),
    }
}

fn masked<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Cidr(c) => Ok(Value::Cidr(Cidr {
            addr: mask(c.addr, c.prefix),
            prefix: c.prefix,
        })),
        _ => call.no_overload(args),
    }
}
