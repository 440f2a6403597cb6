//! Components shared by several pages.

pub mod charts;
pub mod layout;
pub mod status;
pub mod ui;
