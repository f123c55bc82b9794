//! Plain-text layouts of the reports, following the Comware guide (section 4 of the
//! inventory); every function here is pure and returns the text to print.

pub mod sessions;
pub mod status;
pub mod time;
pub mod trace;

pub use sessions::{format_sessions_brief, format_sessions_verbose};
pub use status::format_status;
pub use time::now_unix;
pub use trace::format_trace;
