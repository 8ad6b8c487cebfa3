//! Reading files the user points at (config, secrets, tokens, keys, known_hosts) with a size bound: a path
//! that names `/dev/zero`, a log or a disk image must fail with a clear error, never grow memory without end.

use std::io::{self, Read as _};
use std::path::Path;

/// Config and tokens files.
pub const MAX_CONFIG: u64 = 1024 * 1024;
/// A secret (`*_file`), a private key.
pub const MAX_SECRET: u64 = 64 * 1024;
/// known_hosts (large fleets have large ones).
pub const MAX_KNOWN_HOSTS: u64 = 16 * 1024 * 1024;

/// Reads at most `max` bytes of `path`; a longer file is an `InvalidData` error saying so.
///
/// # Errors
/// The I/O error, or "larger than N bytes".
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {}", bytesize::ByteSize::b(max).display().iec()),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] for text.
///
/// # Errors
/// As [`read_bounded`], or "not UTF-8".
pub fn read_text_bounded(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused() {
        let e = read_bounded(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1.0 KiB"), "{e}");
    }
}
