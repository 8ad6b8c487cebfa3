//! What a caller may do: the three classes of tools and the classes a caller's credentials grant. The HTTP edge
//! computes [`Grants`] from an OAuth access token's scopes; `mcp` hides and refuses the tools outside them.
//! Read-only mode still wins over any grant.

/// A class of tools, each guarded by one configured scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToolClass {
    /// Reads, and the resources.
    Read,
    /// Inserts, updates, renames, creates.
    Write,
    /// Drops and deletes.
    Admin,
}

/// The tool classes a caller may use. Static bearer tokens (and no authentication) grant every class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grants {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
}

impl Grants {
    pub const ALL: Self = Self {
        read: true,
        write: true,
        admin: true,
    };

    pub fn allows(self, class: ToolClass) -> bool {
        match class {
            ToolClass::Read => self.read,
            ToolClass::Write => self.write,
            ToolClass::Admin => self.admin,
        }
    }
}
