//! Kubernetes resource quantities ("500m", "1.5Gi", "2e3"), parsed for comparison.
//!
//! The grammar is the API's (`<signedNumber><suffix>`, suffix binary `Ki`..`Ei`, decimal
//! `n u m k M G T P E`, or an exponent `e3`). Values are held exactly as nano-units in an
//! `i128`: every quantity the API server accepts fits, with room to spare.

use std::fmt;

/// A quantity in nano-units (1 = 10⁻⁹ of the base unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid quantity: {reason}")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

impl Quantity {
    pub fn nanos(self) -> i128 {
        self.0
    }

    /// The quantity of `nanos` nano-units (CEL's quantity arithmetic).
    pub fn from_nanos(nanos: i128) -> Quantity {
        Quantity(nanos)
    }

    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let fail = |reason| QuantityError {
            input: input.to_owned(),
            reason,
        };
        let (negative, rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let number_len = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(fail("no number"));
        }
        if frac_part.contains('.') {
            return Err(fail("more than one decimal point"));
        }
        let mut mantissa: i128 = 0;
        for digit in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or_else(|| fail("too large"))?;
        }
        let (binary_shift, mut exp10): (u32, i32) = match suffix {
            "" => (0, 0),
            "Ki" => (10, 0),
            "Mi" => (20, 0),
            "Gi" => (30, 0),
            "Ti" => (40, 0),
            "Pi" => (50, 0),
            "Ei" => (60, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| fail("bad exponent"))?;
                if !(-30..=30).contains(&exp) {
                    return Err(fail("exponent out of range"));
                }
                (0, exp)
            }
            _ => return Err(fail("unknown suffix")),
        };
        // Nano-units, minus the digits the fraction added to the mantissa.
        exp10 += 9 - i32::try_from(frac_part.len()).map_err(|_| fail("too long"))?;
        let mut value = mantissa
            .checked_mul(1i128 << binary_shift)
            .ok_or_else(|| fail("too large"))?;
        if exp10 >= 0 {
            value = 10i128
                .checked_pow(exp10.unsigned_abs())
                .and_then(|scale| value.checked_mul(scale))
                .ok_or_else(|| fail("too large"))?;
        } else {
            // Below a nano-unit: round up, as the API server does when it canonicalises.
            let scale = 10i128
                .checked_pow(exp10.unsigned_abs())
                .ok_or_else(|| fail("too precise"))?;
            value = (value + scale - 1) / scale;
        }
        Ok(Quantity(if negative { -value } else { value }))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}n", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> i128 {
        Quantity::parse(s).unwrap().nanos()
    }

    #[test]
    fn parses_the_forms_the_api_accepts() {
        const N: i128 = 1_000_000_000;
        assert_eq!(q("1"), N);
        assert_eq!(q("500m"), N / 2);
        assert_eq!(q("0.5"), N / 2);
        assert_eq!(q(".5"), N / 2);
        assert_eq!(q("1.5Gi"), 3 * (1 << 29) * N);
        assert_eq!(q("128Mi"), 128 * (1 << 20) * N);
        assert_eq!(q("1G"), 1_000_000_000 * N);
        assert_eq!(q("2e3"), 2000 * N);
        assert_eq!(q("1E-3"), N / 1000);
        assert_eq!(q("100n"), 100);
        assert_eq!(q("7Ei"), 7 * (1i128 << 60) * N);
        assert_eq!(q("-1"), -N);
        assert!(q("1Gi") > q("1G"));
        assert!(q("250m") < q("0.3"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "1.2.3", "1x", "1Ki2", "ten", "1e", "1e99", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
        let err = Quantity::parse("12parsecs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"12parsecs\" is not a valid quantity: unknown suffix"
        );
    }
}
