//! Class names shared by pages, so cards, buttons and fields look the same everywhere.

pub const CARD: &str = "rounded-lg border border-slate-200 bg-white p-4 shadow-sm space-y-3";
pub const BUTTON: &str = "rounded border border-slate-900 px-3 py-1 text-sm font-medium hover:bg-slate-100";
pub const DANGER: &str =
    "rounded border border-rose-800 px-3 py-1 text-sm font-medium text-rose-800 hover:bg-rose-50";
pub const INPUT: &str = "rounded border border-slate-400 px-2 py-1 text-sm";
pub const LABEL: &str = "text-sm font-medium";
