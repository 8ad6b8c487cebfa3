//! Reading a cursor under limits: at most `max_documents` documents and `max_bytes` of BSON, measured on the raw
//! bytes before anything is decoded, so an oversized result costs no more memory than the limit.

use mongodb::Cursor;
use mongodb::bson::Document;

use super::MongoError;

/// Why reading stopped before the cursor was exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Cut {
    /// More documents matched than the document limit allows.
    MaxDocuments,
    /// The next document would have exceeded the byte limit.
    MaxBytes,
}

/// Documents read from a cursor, and whether a limit cut them short.
#[derive(Debug, Default)]
pub struct Collected {
    pub documents: Vec<Document>,
    /// BSON bytes of `documents`.
    pub bytes: u64,
    pub cut: Option<Cut>,
}

/// Reads up to `max_documents` documents and `max_bytes` bytes, then drops the cursor (which kills it on the
/// server). Checks for one more document to report whether `max_documents` cut the result.
///
/// # Errors
/// The classified driver error.
pub async fn collect(
    mut cursor: Cursor<Document>,
    max_documents: u64,
    max_bytes: u64,
) -> Result<Collected, MongoError> {
    let mut out = Collected::default();
    while cursor.advance().await? {
        if out.documents.len() as u64 >= max_documents {
            out.cut = Some(Cut::MaxDocuments);
            break;
        }
        let size = cursor.current().as_bytes().len() as u64;
        if out.bytes + size > max_bytes {
            out.cut = Some(Cut::MaxBytes);
            break;
        }
        out.bytes += size;
        out.documents.push(cursor.deserialize_current()?);
    }
    Ok(out)
}
