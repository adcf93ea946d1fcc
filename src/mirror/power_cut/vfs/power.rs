//! The power switch: once a cut begins, nothing else reaches the disk.
//!
//! A real power cut stops every thread at once. Here the cutting thread writes its torn sync
//! and then SIGKILLs the process, and until the signal lands the other threads (the writer,
//! the WAL checkpoint thread) still run: a sync of theirs written after the torn one would
//! leave the disk in a state no power cut can. So every change that reaches the disk holds
//! the switch shared while it makes it, the cut turns it off exclusively (waiting for changes
//! under way, which then happened before the cut), and a thread that finds it off parks until
//! the kill lands.

use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

/// On until a cut.
pub struct Power(RwLock<bool>);

/// The process's switch.
pub static POWER: Power = Power::new();

impl Power {
    pub const fn new() -> Power {
        Power(RwLock::new(true))
    }

    /// Held while a change reaches the disk; None once the power is cut.
    pub fn on(&self) -> Option<RwLockReadGuard<'_, bool>> {
        let on = self.0.read().unwrap_or_else(PoisonError::into_inner);
        (*on).then_some(on)
    }

    /// Cuts the power once every change under way has reached the disk.
    pub fn cut(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = false;
    }
}

/// Held while a change reaches the disk; after a cut, never returns: nothing else happens
/// after a power cut, and the SIGKILL is on its way.
pub fn on_or_park() -> RwLockReadGuard<'static, bool> {
    match POWER.on() {
        Some(on) => on,
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_cut_waits_for_the_change_under_way_and_then_refuses_every_other() {
        static SWITCH: Power = Power::new();
        static WRITTEN: AtomicBool = AtomicBool::new(false);
        let change = SWITCH.on().expect("on before the cut");
        let cut = std::thread::spawn(|| {
            SWITCH.cut();
            WRITTEN.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(50));
        WRITTEN.store(true, Ordering::SeqCst);
        drop(change);
        assert!(cut.join().unwrap(), "the cut saw the change under way end");
        assert!(SWITCH.on().is_none(), "nothing after the cut");
    }
}
