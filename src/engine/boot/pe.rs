//! PE32+ images: reading, writing and the Authenticode hash.
