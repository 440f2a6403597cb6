//! Components shared by several pages.

pub mod layout;
pub mod status;
pub mod ui;
