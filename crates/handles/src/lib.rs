//! A process's handle table: the map from [`abi::Handle`] values to the kernel objects the
//! process holds, each with its [`abi::Rights`] (the metal law: a process acts only through what
//! it holds).
//!
//! Guarantees of [`HandleTable`]:
//! - A handle resolves only while its slot holds the object it was issued for: out-of-range,
//!   free and stale-generation handles are refused with [`InvalidHandle`]. Removing an object
//!   advances its slot's generation, so the old value stops resolving (see *Generations* below).
//! - No two live handles share a slot; `len() + free_slots() == capacity()` always.
//! - Insertion takes the lowest free slot, so the first object inserted into an empty table is
//!   [`abi::Handle::PARENT`] (`Handle(0)`): the kernel puts the parent channel there.
//! - Multi-object operations ([`HandleTable::insert_many`], [`HandleTable::remove_many`]) are
//!   all-or-nothing: on failure the table is unchanged and every object is handed back.
//!   [`HandleTable::reserve`] lets a caller secure room before an operation that must not fail
//!   half-way (the kernel's "reserve first, roll back on failure" rule).
//! - No operation panics or aborts on any input: storage grows with fallible allocation and
//!   reports [`InsertError::NoMemory`] instead.
//!
//! # Generations
//!
//! A handle is a slot index (low 16 bits) and the slot's generation (high 16 bits). A slot's
//! first occupant gets generation 0; each removal advances it by one. After 65535 the generation
//! wraps to **1, not 0**: generation 0 is used only by a slot's first occupant, so `Handle(0)`
//! names the parent channel and nothing else, ever. The cost of a 16-bit generation is that a
//! handle kept after its object was removed resolves again once the same slot has been reused
//! exactly 65535 times (a full cycle through 1..=65535); every shorter stale period is refused.
//! A process that keeps such a handle has a bug of its own; it can only reach objects it holds
//! anyway, never another process's.
//!
//! # Watching for removals
//!
//! [`HandleTable::watch`] returns a counter that every later removal, rights reduction or
//! mutable access advances: a look-up remembered outside the table's lock, together with the
//! counter's value at the look-up, is still good while the counter has not moved (the kernel's
//! portal fast path). Tables nobody watches pay one test per such operation.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use abi::limits::{MAX_HANDLES, MAX_MESSAGE_HANDLES};
use abi::{Error, Handle, Rights};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// A handle that names nothing in this table: never issued, already removed, stale, or out of
/// range. Converts to [`abi::Error::InvalidHandle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidHandle;

impl From<InvalidHandle> for Error {
    fn from(_: InvalidHandle) -> Error {
        Error::InvalidHandle
    }
}

/// Why an insertion was refused (the table is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InsertError {
    /// Not enough free slots within the table's capacity. Converts to
    /// [`abi::Error::Overloaded`] (the handle quota is exhausted).
    Full,
    /// The slot storage could not grow. Converts to [`abi::Error::NoMemory`].
    NoMemory,
    /// More than [`abi::limits::MAX_MESSAGE_HANDLES`] objects in one batch. Converts to
    /// [`abi::Error::TooBig`].
    TooMany,
    /// [`HandleTable::restore`] only: the slot is occupied, or it has not been free since that
    /// handle was removed. Converts to [`abi::Error::InvalidHandle`].
    NotRestorable,
}

impl From<InsertError> for Error {
    fn from(e: InsertError) -> Error {
        match e {
            InsertError::Full => Error::Overloaded,
            InsertError::NoMemory => Error::NoMemory,
            InsertError::TooMany => Error::TooBig,
            InsertError::NotRestorable => Error::InvalidHandle,
        }
    }
}

/// A refused insertion: the reason, and what was to be inserted, handed back so the caller can
/// close it (nothing is dropped behind its back).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused<V> {
    /// Why the table refused.
    pub error: InsertError,
    /// The object (or objects) that were not inserted.
    pub value: V,
}

/// The handles issued by [`HandleTable::insert_many`], in the order of the objects given: at
/// most [`abi::limits::MAX_MESSAGE_HANDLES`], stored inline (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    handles: [Handle; MAX_MESSAGE_HANDLES],
    len: usize,
}

impl Inserted {
    /// The handles, in insertion order.
    pub fn as_slice(&self) -> &[Handle] {
        self.handles.get(..self.len).unwrap_or(&[])
    }
}

impl core::ops::Deref for Inserted {
    type Target = [Handle];

    fn deref(&self) -> &[Handle] {
        self.as_slice()
    }
}

/// One slot: the generation of its current (or next) occupant, and the occupant if any.
#[derive(Debug)]
struct Slot<T> {
    generation: u16,
    entry: Option<(T, Rights)>,
}

/// The generation a slot gets after its occupant at `g` is removed. Skips 0 on wrap, so
/// generation 0 belongs to a slot's first occupant only.
const fn next_generation(g: u16) -> u16 {
    if g == u16::MAX { 1 } else { g + 1 }
}

/// A process's handle table: up to `capacity` objects of type `T`, each with rights.
///
/// Slots are materialized lazily (an empty table allocates nothing); slots past the
/// materialized ones are free with generation 0.
#[derive(Debug)]
pub struct HandleTable<T> {
    slots: Vec<Slot<T>>,
    len: usize,
    capacity: usize,
    /// Advanced by every removal once someone watches (see *Watching for removals*).
    changes: Option<Arc<AtomicU64>>,
}

impl<T> HandleTable<T> {
    /// An empty table that will hold at most `capacity` objects; a capacity above
    /// [`abi::limits::MAX_HANDLES`] is clamped to it. Allocates nothing.
    pub const fn new(capacity: usize) -> HandleTable<T> {
        let capacity = if capacity > MAX_HANDLES {
            MAX_HANDLES
        } else {
            capacity
        };
        HandleTable {
            slots: Vec::new(),
            len: 0,
            capacity,
            changes: None,
        }
    }

    /// Starts counting changes (see *Watching for removals*; the counter is the one allocation
    /// here that is not fallible) and returns the counter's value: a look-up made now, while
    /// the table is held, stays valid while the value is unchanged.
    pub fn watch(&mut self) -> u64 {
        self.changes
            .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .load(Ordering::Acquire)
    }

    /// The change counter, for a watcher to compare later (`None` before [`watch`](Self::watch)).
    pub fn watcher(&self) -> Option<Arc<AtomicU64>> {
        self.changes.clone()
    }

    /// A removal, a rights reduction or a mutable access: watchers' look-ups may be stale.
    fn changed(&self) {
        if let Some(c) = &self.changes {
            // Only the table's holder writes it (it has the table mutably); readers elsewhere
            // compare the value.
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        }
    }

    /// The most objects this table holds.
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many objects the table holds now.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds nothing.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many more objects fit: `capacity() - len()`.
    pub const fn free_slots(&self) -> usize {
        self.capacity - self.len
    }

    /// Makes sure the next `n` insertions cannot fail: at least `n` slots are free and their
    /// storage is allocated. After `Ok`, up to `n` calls of [`insert`](Self::insert) (or one
    /// [`insert_many`](Self::insert_many) of up to `n` objects) succeed, provided nothing else is
    /// inserted in between. On `Err` the table's contents are unchanged.
    pub fn reserve(&mut self, n: usize) -> Result<(), InsertError> {
        if n > self.free_slots() {
            return Err(InsertError::Full);
        }
        let materialized_free = self.slots.len() - self.len;
        if materialized_free >= n {
            return Ok(());
        }
        let missing = n - materialized_free;
        // `n <= free_slots()` ensures `slots.len() + missing <= capacity`.
        self.slots
            .try_reserve_exact(missing)
            .map_err(|_| InsertError::NoMemory)?;
        for _ in 0..missing {
            self.slots.push(Slot {
                generation: 0,
                entry: None,
            });
        }
        Ok(())
    }

    /// Inserts `obj` with `rights` into the lowest free slot and returns its handle. Into an
    /// empty, fresh table this is `Handle(0)`. On failure `obj` is handed back.
    pub fn insert(&mut self, obj: T, rights: Rights) -> Result<Handle, Refused<T>> {
        if let Err(error) = self.reserve(1) {
            return Err(Refused { error, value: obj });
        }
        match self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.entry.is_none())
        {
            Some((index, slot)) => {
                slot.entry = Some((obj, rights));
                self.len += 1;
                // Capacity is at most MAX_HANDLES (1024), so every index fits in 16 bits.
                Ok(Handle::new(index as u16, slot.generation))
            }
            // Not reached: `reserve(1)` secured a free, allocated slot.
            None => Err(Refused {
                error: InsertError::Full,
                value: obj,
            }),
        }
    }

    /// Inserts every object, or none: at most [`abi::limits::MAX_MESSAGE_HANDLES`] objects,
    /// each into the lowest free slot in turn. Returns their handles in order. On failure
    /// ([`InsertError::TooMany`], [`InsertError::Full`], [`InsertError::NoMemory`]) the table is
    /// unchanged and `items` is handed back whole.
    pub fn insert_many(
        &mut self,
        items: Vec<(T, Rights)>,
    ) -> Result<Inserted, Refused<Vec<(T, Rights)>>> {
        if items.len() > MAX_MESSAGE_HANDLES {
            return Err(Refused {
                error: InsertError::TooMany,
                value: items,
            });
        }
        if let Err(error) = self.reserve(items.len()) {
            return Err(Refused {
                error,
                value: items,
            });
        }
        let mut out = Inserted {
            handles: [Handle(0); MAX_MESSAGE_HANDLES],
            len: 0,
        };
        let free = self
            .slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.entry.is_none());
        // `reserve` secured `items.len()` free, allocated slots, so the zip never runs short.
        for ((index, slot), (obj, rights)) in free.zip(items) {
            slot.entry = Some((obj, rights));
            if let Some(h) = out.handles.get_mut(out.len) {
                *h = Handle::new(index as u16, slot.generation);
                out.len += 1;
            }
            self.len += 1;
        }
        Ok(out)
    }

    /// The slot `h` names, if `h` is live.
    fn live(&self, h: Handle) -> Option<&Slot<T>> {
        self.slots
            .get(usize::from(h.index()))
            .filter(|s| s.generation == h.generation() && s.entry.is_some())
    }

    /// The slot `h` names, mutably, if `h` is live.
    fn live_mut(&mut self, h: Handle) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(usize::from(h.index()))
            .filter(|s| s.generation == h.generation() && s.entry.is_some())
    }

    /// True when `h` names a live object.
    pub fn contains(&self, h: Handle) -> bool {
        self.live(h).is_some()
    }

    /// The object `h` names and its rights.
    pub fn get(&self, h: Handle) -> Result<(&T, Rights), InvalidHandle> {
        match self.live(h).and_then(|s| s.entry.as_ref()) {
            Some((obj, rights)) => Ok((obj, *rights)),
            None => Err(InvalidHandle),
        }
    }

    /// The object `h` names, mutably, and its rights.
    pub fn get_mut(&mut self, h: Handle) -> Result<(&mut T, Rights), InvalidHandle> {
        self.changed();
        match self.live_mut(h).and_then(|s| s.entry.as_mut()) {
            Some((obj, rights)) => Ok((obj, *rights)),
            None => Err(InvalidHandle),
        }
    }

    /// The object `h` names, if its rights include every right in `needed`:
    /// [`abi::Error::InvalidHandle`] when `h` names nothing, [`abi::Error::NoRights`] when a
    /// right is missing.
    pub fn check(&self, h: Handle, needed: Rights) -> Result<&T, Error> {
        let (obj, rights) = self.get(h)?;
        if rights.contains(needed) {
            Ok(obj)
        } else {
            Err(Error::NoRights)
        }
    }

    /// Like [`check`](Self::check), mutably.
    pub fn check_mut(&mut self, h: Handle, needed: Rights) -> Result<&mut T, Error> {
        let (obj, rights) = self.get_mut(h)?;
        if rights.contains(needed) {
            Ok(obj)
        } else {
            Err(Error::NoRights)
        }
    }

    /// Shrinks the rights of `h` to those also in `keep` (rights are never added) and returns
    /// the new rights.
    pub fn reduce_rights(&mut self, h: Handle, keep: Rights) -> Result<Rights, InvalidHandle> {
        self.changed();
        match self.live_mut(h).and_then(|s| s.entry.as_mut()) {
            Some((_, rights)) => {
                *rights = rights.intersect(keep);
                Ok(*rights)
            }
            None => Err(InvalidHandle),
        }
    }

    /// Takes the object `h` names out of the table, freeing its slot and advancing the slot's
    /// generation so `h` never resolves again (see the crate docs on wrap-around).
    pub fn remove(&mut self, h: Handle) -> Result<(T, Rights), InvalidHandle> {
        self.changed();
        let slot = self.live_mut(h).ok_or(InvalidHandle)?;
        let entry = slot.entry.take().ok_or(InvalidHandle)?;
        slot.generation = next_generation(slot.generation);
        self.len -= 1;
        Ok(entry)
    }

    /// Takes every object `handles` names out of the table, or none: each must be live, carry
    /// every right in `needed`, and appear once. Returns the objects in the order given. On
    /// error the table is unchanged: [`abi::Error::InvalidHandle`] for a handle that names
    /// nothing or repeats an earlier one, [`abi::Error::NoRights`] for a missing right,
    /// [`abi::Error::NoMemory`] when the result cannot be allocated. The first offending handle,
    /// in order, decides the error. Checking for repeats is quadratic in `handles.len()`; the
    /// kernel passes at most [`abi::limits::MAX_MESSAGE_HANDLES`].
    pub fn remove_many(
        &mut self,
        handles: &[Handle],
        needed: Rights,
    ) -> Result<Vec<(T, Rights)>, Error> {
        for (i, &h) in handles.iter().enumerate() {
            self.check(h, needed)?;
            if handles.get(..i).is_some_and(|earlier| earlier.contains(&h)) {
                return Err(Error::InvalidHandle);
            }
        }
        let mut out = Vec::new();
        out.try_reserve_exact(handles.len())
            .map_err(|_| Error::NoMemory)?;
        for &h in handles {
            // Every handle was checked live and distinct above, so each removal succeeds.
            if let Ok(entry) = self.remove(h) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Puts `obj` back under the handle `h` it was just removed with, so a caller can roll back
    /// a [`remove`](Self::remove) or [`remove_many`](Self::remove_many) when a later step fails
    /// (e.g. the channel refused the message the objects were moving in). Succeeds only when
    /// `h`'s slot has stayed free since `h` was removed; then `h` resolves again, with `rights`.
    /// Otherwise [`InsertError::NotRestorable`] and `obj` is handed back.
    pub fn restore(&mut self, h: Handle, obj: T, rights: Rights) -> Result<(), Refused<T>> {
        match self.slots.get_mut(usize::from(h.index())) {
            Some(slot)
                if slot.entry.is_none() && slot.generation == next_generation(h.generation()) =>
            {
                slot.generation = h.generation();
                slot.entry = Some((obj, rights));
                self.len += 1;
                Ok(())
            }
            _ => Err(Refused {
                error: InsertError::NotRestorable,
                value: obj,
            }),
        }
    }

    /// Puts `obj` into the slot `h` names, with `h`'s generation: how a process rebuilt from a
    /// suspended image gets back exactly the handles it had. The slot must be free and below
    /// the capacity ([`InsertError::NotRestorable`], [`InsertError::Full`]); slots before it are
    /// materialized free.
    pub fn place(&mut self, h: Handle, obj: T, rights: Rights) -> Result<(), Refused<T>> {
        let index = usize::from(h.index());
        if index >= self.capacity {
            return Err(Refused {
                error: InsertError::Full,
                value: obj,
            });
        }
        if index >= self.slots.len() {
            let missing = index + 1 - self.slots.len();
            if self.slots.try_reserve_exact(missing).is_err() {
                return Err(Refused {
                    error: InsertError::NoMemory,
                    value: obj,
                });
            }
            for _ in 0..missing {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
            }
        }
        match self.slots.get_mut(index) {
            Some(slot) if slot.entry.is_none() => {
                slot.generation = h.generation();
                slot.entry = Some((obj, rights));
                self.len += 1;
                Ok(())
            }
            _ => Err(Refused {
                error: InsertError::NotRestorable,
                value: obj,
            }),
        }
    }

    /// Every live object with its handle and rights, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T, Rights)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.entry
                .as_ref()
                .map(|(obj, rights)| (Handle::new(index as u16, slot.generation), obj, *rights))
        })
    }

    /// Takes the objects out one by one, in slot order, each with the handle it had and its
    /// rights (for process death: the kernel closes each one). Every slot taken advances its
    /// generation, as [`remove`](Self::remove) does. Objects not yet yielded when the iterator
    /// is dropped stay in the table.
    pub fn drain(&mut self) -> Drain<'_, T> {
        self.changed();
        Drain {
            table: self,
            next: 0,
        }
    }
}

/// The iterator [`HandleTable::drain`] returns.
#[derive(Debug)]
pub struct Drain<'a, T> {
    table: &'a mut HandleTable<T>,
    next: usize,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = (Handle, T, Rights);

    fn next(&mut self) -> Option<(Handle, T, Rights)> {
        while let Some(slot) = self.table.slots.get_mut(self.next) {
            let index = self.next;
            self.next += 1;
            if let Some((obj, rights)) = slot.entry.take() {
                let h = Handle::new(index as u16, slot.generation);
                slot.generation = next_generation(slot.generation);
                self.table.len -= 1;
                return Some((h, obj, rights));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.table.len))
    }
}

#[cfg(test)]
mod tests;
