//! The Kubernetes CEL libraries, function by function: sets, regex, url, ip/cidr, quantity,
//! named formats, semver, timestamps and durations (cel-go's and Kubernetes' own cases).

use super::tests::*;

#[test]
fn sets_extension() {
    // cel-go ext/sets.go.
    check(&[
        ("sets.contains([], [])", "true"),
        ("sets.contains([], [1])", "false"),
        ("sets.contains([1, 2, 3, 4], [2, 3])", "true"),
        ("sets.contains(dyn([1, 2, 3]), [1.0, 2.0])", "true"),
        ("sets.equivalent([], [])", "true"),
        ("sets.equivalent([1], [1, 1])", "true"),
        ("sets.equivalent(dyn([1]), [1u, dyn(1.0)])", "true"),
        (
            "sets.equivalent(dyn([1, 2, 3]), [3u, dyn(2.0), dyn(1)])",
            "true",
        ),
        ("sets.intersects([1], [])", "false"),
        ("sets.intersects([1], [1, 2])", "true"),
        (
            "sets.intersects([[1], [2, 3]], [[1, 2], [2, dyn(3.0)]])",
            "true",
        ),
    ]);
}

#[test]
fn regex_library() {
    // k8s.io/apiserver/pkg/cel/library/regex.go.
    check(&[
        ("'abc 123'.find('[0-9]+')", "'123'"),
        ("'abc 123'.find('xyz')", "''"),
        ("'123 abc 456'.findAll('[0-9]+')", "['123', '456']"),
        ("'123 abc 456'.findAll('[0-9]+', 1)", "['123']"),
        ("'123 abc 456'.findAll('xyz')", "[]"),
        (
            "'abc'.matches(object.metadata.name.substring(0, 0) + 'b')",
            "true",
        ),
        (
            "'abc 123'.find(object.metadata.name.substring(0, 0) + '[0-9]+')",
            "'123'",
        ),
    ]);
    check_errors(&[(
        "'abc'.matches(object.metadata.name + '(') == true",
        "invalid regular expression",
    )]);
}

#[test]
fn url_library() {
    // k8s.io/apiserver/pkg/cel/library/urls.go.
    check(&[
        (
            "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
            "true",
        ),
        ("isURL('/absolute-path')", "true"),
        ("isURL('https://a:b:c/')", "false"),
        ("isURL('../relative-path')", "false"),
        ("url('/path').getScheme()", "''"),
        ("url('https://example.com/').getScheme()", "'https'"),
        (
            "url('https://example.com:80/').getHost()",
            "'example.com:80'",
        ),
        ("url('https://example.com/').getHost()", "'example.com'"),
        ("url('https://[::1]:80/').getHost()", "'[::1]:80'"),
        ("url('https://[::1]/').getHost()", "'[::1]'"),
        ("url('/path').getHost()", "''"),
        (
            "url('https://example.com:80/').getHostname()",
            "'example.com'",
        ),
        ("url('https://127.0.0.1:80/').getHostname()", "'127.0.0.1'"),
        ("url('https://[::1]:80/').getHostname()", "'::1'"),
        ("url('/path').getHostname()", "''"),
        ("url('https://example.com:80/').getPort()", "'80'"),
        ("url('https://example.com/').getPort()", "''"),
        ("url('/path').getPort()", "''"),
        (
            "url('https://example.com/path').getEscapedPath()",
            "'/path'",
        ),
        (
            "url('https://example.com/path with spaces/').getEscapedPath()",
            "'/path%20with%20spaces/'",
        ),
        ("url('https://example.com').getEscapedPath()", "''"),
        (
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery()",
            "{'k1': ['a'], 'k2': ['b', 'c']}",
        ),
        (
            "url('https://example.com/path?key with spaces=value with spaces').getQuery()",
            "{'key with spaces': ['value with spaces']}",
        ),
        ("url('https://example.com/path?').getQuery()", "{}"),
        ("url('https://example.com/path').getQuery()", "{}"),
        (
            "url('https://example.com/a#frag') == url('https://example.com/a')",
            "true",
        ),
    ]);
    check_errors(&[
        ("url('https://a:b:c/') == url('/')", "URL parse error"),
        (
            "url('../relative-path') == url('/')",
            "invalid URI for request",
        ),
    ]);
}

#[test]
fn ip_and_cidr_libraries() {
    // k8s.io/apiserver/pkg/cel/library/ip.go and cidr.go.
    check(&[
        ("isIP('127.0.0.1')", "true"),
        ("isIP('::1')", "true"),
        ("isIP('127.0.0.256')", "false"),
        ("isIP(':::1')", "false"),
        ("isIP('01.2.3.4')", "false"),
        ("isIP('::ffff:1.2.3.4')", "false"),
        ("isIP('fe80::1%eth0')", "false"),
        ("ip.isCanonical('127.0.0.1')", "true"),
        ("ip.isCanonical('2001:db8::abcd')", "true"),
        ("ip.isCanonical('2001:DB8::ABCD')", "false"),
        ("ip.isCanonical('2001:db8::0:0:0:abcd')", "false"),
        ("ip('127.0.0.1').family()", "4"),
        ("ip('::1').family()", "6"),
        (
            "ip('0.0.0.0').isUnspecified() && ip('::').isUnspecified()",
            "true",
        ),
        (
            "ip('127.0.0.1').isUnspecified() || ip('::1').isUnspecified()",
            "false",
        ),
        (
            "ip('127.0.0.1').isLoopback() && ip('::1').isLoopback()",
            "true",
        ),
        (
            "ip('192.168.0.1').isLoopback() || ip('2001:db8::abcd').isLoopback()",
            "false",
        ),
        (
            "ip('224.0.0.1').isLinkLocalMulticast() && ip('ff02::1').isLinkLocalMulticast()",
            "true",
        ),
        (
            "ip('224.0.1.1').isLinkLocalMulticast() || ip('fd00::1').isLinkLocalMulticast()",
            "false",
        ),
        (
            "ip('169.254.169.254').isLinkLocalUnicast() && ip('fe80::1').isLinkLocalUnicast()",
            "true",
        ),
        (
            "ip('192.168.0.1').isLinkLocalUnicast() || ip('fd80::1').isLinkLocalUnicast()",
            "false",
        ),
        (
            "ip('192.168.0.1').isGlobalUnicast() && ip('2001:db8::abcd').isGlobalUnicast()",
            "true",
        ),
        (
            "ip('255.255.255.255').isGlobalUnicast() || ip('ff00::1').isGlobalUnicast()",
            "false",
        ),
        ("string(ip('2001:db8:0:0::abcd'))", "'2001:db8::abcd'"),
        (
            "ip('127.0.0.1') == ip('127.0.0.1') && ip('127.0.0.1') != ip('127.0.0.2')",
            "true",
        ),
        ("isCIDR('192.168.0.0/24') && isCIDR('::1/128')", "true"),
        (
            "isCIDR('192.168.0.0/33') || isCIDR('192.168.0.0') || isCIDR('::ffff:1.2.3.4/120')",
            "false",
        ),
        (
            "cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))",
            "true",
        ),
        (
            "cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))",
            "false",
        ),
        ("cidr('192.168.0.0/24').containsIP('192.168.0.1')", "true"),
        ("cidr('192.168.0.0/24').containsIP(ip('::1'))", "false"),
        (
            "cidr('192.168.0.0/24').containsCIDR(cidr('192.168.0.0/25'))",
            "true",
        ),
        (
            "cidr('192.168.0.0/24').containsCIDR('192.168.0.0/23')",
            "false",
        ),
        (
            "cidr('192.168.0.0/24').containsCIDR(cidr('192.168.0.0/24'))",
            "true",
        ),
        (
            "cidr('2001:db8::/32').containsCIDR(cidr('2001:db8::/33'))",
            "true",
        ),
        ("cidr('192.168.0.1/24').ip() == ip('192.168.0.1')", "true"),
        ("cidr('192.168.0.1/24').prefixLength()", "24"),
        (
            "cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')",
            "true",
        ),
        ("string(cidr('::1/128'))", "'::1/128'"),
        (
            "string(cidr('192.168.0.1/24').masked())",
            "'192.168.0.0/24'",
        ),
    ]);
    check_errors(&[
        ("ip('127.0.0.256') == ip('127.0.0.1')", "parse error"),
        (
            "ip('::ffff:1.2.3.4') == ip('127.0.0.1')",
            "IPv4-mapped IPv6 address",
        ),
        (
            "ip('fe80::1%eth0') == ip('127.0.0.1')",
            "zone value is not allowed",
        ),
        (
            "cidr('192.168.0.0/33') == cidr('192.168.0.0/24')",
            "parse error",
        ),
    ]);
}

#[test]
fn quantity_library() {
    // k8s.io/apiserver/pkg/cel/library/quantity.go.
    check(&[
        ("quantity('50M').isGreaterThan(quantity('50Mi'))", "false"),
        ("quantity('50Mi').isGreaterThan(quantity('50M'))", "true"),
        ("quantity('50M').isLessThan(quantity('50Mi'))", "true"),
        ("quantity('200M').compareTo(quantity('0.2G'))", "0"),
        ("quantity('50k').asInteger()", "50000"),
        // A whole quantity beyond int64 is not an integer (the API's AsInt64 fails).
        (
            "quantity('50k').isInteger() && !quantity('10E').isInteger()",
            "true",
        ),
        ("quantity('50.5').isInteger()", "false"),
        ("quantity('50k').asApproximateFloat()", "50000.0"),
        (
            "quantity('1.5').sign() + quantity('0').sign() + quantity('-1').sign()",
            "0",
        ),
        (
            "quantity('50k').add(quantity('20k')) == quantity('70k')",
            "true",
        ),
        ("quantity('50k').add(20) == quantity('50020')", "true"),
        (
            "quantity('50k').sub(quantity('20k')) == quantity('30k')",
            "true",
        ),
        ("quantity('50k').sub(20) == quantity('49980')", "true"),
        ("quantity('1') == quantity('1000m')", "true"),
        (
            "isQuantity('1.3G') && isQuantity('1.5Gi') && !isQuantity('1.3GiB') && !isQuantity('10Gigs')",
            "true",
        ),
        (
            "quantity(object.spec.template.spec.containers[0].resources.limits.memory).isGreaterThan(quantity('512Mi'))",
            "true",
        ),
    ]);
    check_errors(&[
        (
            "quantity('50.5').asInteger() == 50",
            "cannot convert value to integer",
        ),
        (
            "quantity('10Gigs') == quantity('1')",
            "not a valid quantity",
        ),
    ]);
}

#[test]
fn named_formats() {
    // k8s.io/apiserver/pkg/cel/library/format.go.
    check(&[
        (
            "format.dns1123Label().validate('my-label-name')",
            "optional.none()",
        ),
        (
            "format.dns1123Subdomain().validate('apiextensions.k8s.io')",
            "optional.none()",
        ),
        (
            "format.dns1035Label().validate('my-label-name')",
            "optional.none()",
        ),
        (
            "format.qualifiedName().validate('apiextensions.k8s.io/v1beta1')",
            "optional.none()",
        ),
        (
            "format.dns1123LabelPrefix().validate('my-label-prefix-')",
            "optional.none()",
        ),
        (
            "format.dns1123SubdomainPrefix().validate('mysubdomain.prefix.-')",
            "optional.none()",
        ),
        (
            "format.dns1035LabelPrefix().validate('my-label-prefix-')",
            "optional.none()",
        ),
        (
            "format.uri().validate('http://example.com')",
            "optional.none()",
        ),
        (
            "format.uuid().validate('123e4567-e89b-12d3-a456-426614174000')",
            "optional.none()",
        ),
        ("format.byte().validate('aGVsbG8=')", "optional.none()"),
        ("format.date().validate('2021-01-01')", "optional.none()"),
        (
            "format.datetime().validate('2021-01-01T00:00:00Z')",
            "optional.none()",
        ),
        (
            "format.dns1123Label().validate('Not_A_Label').hasValue()",
            "true",
        ),
        ("format.labelValue().validate('-bad').hasValue()", "true"),
        (
            "format.named('dns1123Label').value().validate('x').hasValue()",
            "false",
        ),
        ("format.named('nope').hasValue()", "false"),
        (
            "format.dns1123Label().validate('a.b').value()",
            "['must not contain dots']",
        ),
    ]);
}

#[test]
fn semver_library() {
    // k8s.io/apiserver/pkg/cel/library/semverlib.go.
    check(&[
        ("isSemver('1.0.0')", "true"),
        ("isSemver('hello')", "false"),
        ("isSemver('v1.0')", "false"),
        ("isSemver('v1.0', true)", "true"),
        ("semver('1.0.0') == semver('1.0.0')", "true"),
        ("semver('1.0.0+build') == semver('1.0.0')", "true"),
        ("semver('v01.01', true) == semver('1.1.0')", "true"),
        ("semver('1.0.0').isGreaterThan(semver('0.1.0'))", "true"),
        ("semver('1.0.0').isLessThan(semver('1.1.0'))", "true"),
        ("semver('1.0.0-alpha').isLessThan(semver('1.0.0'))", "true"),
        ("semver('1.0.0').compareTo(semver('2.0.0'))", "-1"),
        (
            "semver('1.2.3').major() + semver('1.2.3').minor() + semver('1.2.3').patch()",
            "6",
        ),
    ]);
    check_errors(&[("semver('v1') == semver('1.0.0')", "No Major.Minor.Patch")]);
}

#[test]
fn timestamps_and_durations() {
    check(&[
        (
            "timestamp('2023-02-03T23:31:20Z') < timestamp('2023-02-04T00:00:00Z')",
            "true",
        ),
        (
            "timestamp('2023-02-03T23:31:20Z') + duration('1h') == timestamp('2023-02-04T00:31:20Z')",
            "true",
        ),
        (
            "timestamp('2023-02-04T00:00:00Z') - timestamp('2023-02-03T00:00:00Z')",
            "duration('24h')",
        ),
        ("timestamp('2023-02-03T23:31:20.5+01:00').getHours()", "22"),
        ("timestamp('2023-02-03T23:31:20Z').getHours('+02:00')", "1"),
        ("timestamp('2023-02-03T23:31:20Z').getFullYear()", "2023"),
        ("timestamp('2023-02-03T23:31:20Z').getMonth()", "1"),
        ("timestamp('2023-02-03T23:31:20Z').getDate()", "3"),
        ("timestamp('2023-02-03T23:31:20Z').getDayOfMonth()", "2"),
        ("timestamp('2023-02-03T23:31:20Z').getDayOfWeek()", "5"),
        ("timestamp('2023-02-03T23:31:20Z').getDayOfYear()", "33"),
        (
            "timestamp('2023-02-03T23:31:20.123Z').getMilliseconds()",
            "123",
        ),
        ("duration('1h30m').getMinutes()", "90"),
        ("duration('1.5s').getMilliseconds()", "1500"),
        ("string(duration('90m'))", "'5400s'"),
        (
            "string(timestamp('2023-02-03T23:31:20.500Z'))",
            "'2023-02-03T23:31:20.5Z'",
        ),
        ("int(timestamp('1970-01-01T00:01:00Z'))", "60"),
        ("timestamp(60) == timestamp('1970-01-01T00:01:00Z')", "true"),
        ("duration('-1s') < duration('0s')", "true"),
    ]);
    check_errors(&[
        (
            "timestamp('9999-12-31T23:59:59Z') + duration('1s') > timestamp(0)",
            "timestamp overflow",
        ),
        (
            "timestamp(0).getHours('Europe/Berlin') == 1",
            "unsupported time zone",
        ),
    ]);
}
