//! One error type for the whole engine. Every variant renders as one line that names the
//! value or file at fault and says what to do; the CLI prints it and exits non-zero.

use std::fmt;
use std::sync::Arc;

/// The underlying error of an `Io` error (std::io, image, gzip ...), kept for
/// `std::error::Error::source`; two causes compare equal by their messages.
#[derive(Debug, Clone, Default)]
pub struct Cause(pub Option<Arc<dyn std::error::Error + Send + Sync>>);

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.0.as_ref().map(|e| e.to_string()) == other.0.as_ref().map(|e| e.to_string())
    }
}

/// Every failure scoregen reports: one line naming the file or value and what to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No adapter could be found or opened (exit code 3).
    NoAdapter(String),
    /// Shapes that cannot work together, named in the message.
    Shape(String),
    /// A request beyond what the device granted (buffer size, workgroups, bindings).
    Limit(String),
    /// A bad argument or config value.
    Invalid(String),
    /// A file that cannot be read or written: the message (cause included) and the cause.
    Io(String, Cause),
    /// wgpu reported an error we did not prevent up front.
    Gpu(String),
}

/// scoregen's results.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Process exit code for this error: 3 when there is no usable GPU adapter, 1 otherwise
    /// (2 is the command line parser's: a bad flag).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoAdapter(_) => 3,
            _ => 1,
        }
    }
}

impl Error {
    /// An i/o error: "`what`: `cause`", the cause kept as the source.
    pub fn io(what: impl fmt::Display, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Io(format!("{what}: {cause}"), Cause(Some(Arc::new(cause))))
    }

    /// The message without its kind's prefix.
    pub fn message(&self) -> &str {
        match self {
            Error::NoAdapter(m)
            | Error::Shape(m)
            | Error::Limit(m)
            | Error::Invalid(m)
            | Error::Io(m, _)
            | Error::Gpu(m) => m,
        }
    }

    /// The same error with `what` (a file, a key) in front of its message: the kind, and so
    /// the prefix and exit code, stay; the prefix is printed once.
    pub fn context(self, what: impl fmt::Display) -> Error {
        let m = format!("{what}: {}", self.message());
        match self {
            Error::NoAdapter(_) => Error::NoAdapter(m),
            Error::Shape(_) => Error::Shape(m),
            Error::Limit(_) => Error::Limit(m),
            Error::Invalid(_) => Error::Invalid(m),
            Error::Io(_, c) => Error::Io(m, c),
            Error::Gpu(_) => Error::Gpu(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter(m) => write!(f, "no GPU adapter: {m}"),
            Error::Shape(m) => write!(f, "shape error: {m}"),
            Error::Limit(m) => write!(f, "device limit: {m}"),
            Error::Invalid(m) => write!(f, "invalid input: {m}"),
            Error::Io(m, _) => write!(f, "i/o error: {m}"),
            Error::Gpu(m) => write!(f, "gpu error: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(_, Cause(Some(c))) => Some(c.as_ref() as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

/// `shape_err!("matmul: a is {:?}", a)` -> `Err(Error::Shape(...))`.
#[macro_export]
macro_rules! shape_err {
    ($($arg:tt)*) => { Err($crate::error::Error::Shape(format!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_cause_and_print_one_line() {
        let cause = std::fs::read("/nonexistent/scoregen/x.toml").unwrap_err();
        let kind = cause.kind();
        let e = Error::io("x.toml: cannot read the config", cause).context("run");
        let line = e.to_string();
        assert!(line.starts_with("i/o error: run: x.toml: cannot read the config: "), "{line}");
        assert_eq!(line.matches("i/o error").count(), 1, "{line}");
        let src = std::error::Error::source(&e).expect("the cause is kept");
        assert_eq!(src.downcast_ref::<std::io::Error>().map(|c| c.kind()), Some(kind));
        assert!(std::error::Error::source(&Error::Invalid("x".into())).is_none());
    }
}
