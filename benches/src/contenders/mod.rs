//! The implementations of [`Bank`](crate::Bank) under comparison, one module each.

pub mod concord;
pub mod global_mutex;
pub mod mutex_per_account;
pub mod rust_stm;

pub use self::concord::Concord;
pub use self::global_mutex::GlobalMutex;
pub use self::mutex_per_account::MutexPerAccount;
pub use self::rust_stm::RustStm;
