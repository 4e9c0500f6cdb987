//! The one way meridian takes a `std::sync::Mutex`: a poisoned lock is recovered,
//! never unwrapped, skipped or turned into a default.
//!
//! Why recovering is safe for our data: every mutex here guards one value (a map,
//! a list, an `Option`, a buffer) and each critical section is a single insert,
//! push, swap, take or store; none keeps an invariant across two steps that a
//! panic half-way could break, and Rust keeps the value itself sound. Unwrapping
//! instead would turn one panic into a panic on every later lock (a gateway that
//! stops probing or logging); skipping would lose updates silently.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering the guard if an earlier holder panicked.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let panicked = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            g.push(2);
            panic!("while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(m.is_poisoned());
        lock(&m).push(3);
        assert_eq!(*lock(&m), vec![1, 2, 3]);
    }
}
