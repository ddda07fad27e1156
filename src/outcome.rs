//! What a webhook request was and how it ended: the vocabulary the server, the wire format and
//! the metrics share, kept below all three so none imports another for it.

/// Which webhook endpoint a review came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub const ALL: [Endpoint; 2] = [Endpoint::Validate, Endpoint::Mutate];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// How a review ended, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    /// Not judged: malformed or of a shape portier cannot read.
    Invalid,
    /// Refused unread: too many reviews were in flight (503).
    Shed,
    /// Not answered within the request timeout (503).
    TimedOut,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Allowed,
        Outcome::Denied,
        Outcome::Invalid,
        Outcome::Shed,
        Outcome::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::Shed => "shed",
            Outcome::TimedOut => "timed_out",
        }
    }

    /// Position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
