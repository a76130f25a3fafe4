//! A map for the many small sets a node holds per connection and per channel: a connection's
//! channels, a channel's local subscribers, a user's connections. Most hold one to a few
//! entries, and a `HashMap`'s smallest table has four buckets (about 250 bytes for a channel
//! name and its value), paid by every idle connection. Up to `FEW` entries live in a `Vec`
//! sized exactly, searched linearly; past that, in a `HashMap`. Order is unspecified, as in a
//! `HashMap`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Most entries kept in the vector. Past it the map turns into a `HashMap`; it turns back when
/// it shrinks to `FEW / 2`, so a map hovering at the boundary does not convert on every change.
const FEW: usize = 8;

pub struct SmallMap<K, V>(Repr<K, V>);

enum Repr<K, V> {
    Few(Vec<(K, V)>),
    Many(HashMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(Repr::Few(Vec::new()))
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Few(v) => v.len(),
            Repr::Many(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match &self.0 {
            Repr::Few(v) => v.iter().find(|(k, _)| k.borrow() == key).map(|(_, v)| v),
            Repr::Many(m) => m.get(key),
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts or replaces; the old value, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match &mut self.0 {
            Repr::Few(v) => {
                if let Some(slot) = v.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(&mut slot.1, value));
                }
                if v.len() < FEW {
                    // One slot at a time: the usual map holds one or two entries for its life.
                    v.reserve_exact(1);
                    v.push((key, value));
                } else {
                    let mut m: HashMap<K, V> = std::mem::take(v).into_iter().collect();
                    m.insert(key, value);
                    self.0 = Repr::Many(m);
                }
                None
            }
            Repr::Many(m) => m.insert(key, value),
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match &mut self.0 {
            Repr::Few(v) => {
                let i = v.iter().position(|(k, _)| k.borrow() == key)?;
                let (_, value) = v.swap_remove(i);
                if v.is_empty() {
                    *v = Vec::new();
                }
                Some(value)
            }
            Repr::Many(m) => {
                let value = m.remove(key)?;
                if m.len() <= FEW / 2 {
                    let mut few = Vec::with_capacity(m.len());
                    few.extend(m.drain());
                    self.0 = Repr::Few(few);
                }
                Some(value)
            }
        }
    }

    pub fn iter(&self) -> Iter<'_, K, V> {
        match &self.0 {
            Repr::Few(v) => Iter::Few(v.iter()),
            Repr::Many(m) => Iter::Many(m.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> Box<dyn Iterator<Item = &mut V> + '_> {
        match &mut self.0 {
            Repr::Few(v) => Box::new(v.iter_mut().map(|(_, v)| v)),
            Repr::Many(m) => Box::new(m.values_mut()),
        }
    }
}

pub enum Iter<'a, K, V> {
    Few(std::slice::Iter<'a, (K, V)>),
    Many(std::collections::hash_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Many(i) => i.next(),
        }
    }
}

impl<'a, K: Eq + Hash, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Few(v) => f
                .debug_map()
                .entries(v.iter().map(|(k, v)| (k, v)))
                .finish(),
            Repr::Many(m) => f.debug_map().entries(m.iter()).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(m: &SmallMap<u32, u32>) -> Vec<(u32, u32)> {
        let mut v: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    #[test]
    fn behaves_like_a_hash_map_across_both_forms() {
        let mut small = SmallMap::new();
        let mut model = HashMap::new();
        // Grow past FEW, shrink below FEW / 2, grow again; replace and miss on the way.
        let steps: Vec<(bool, u32)> = (0..20)
            .map(|k| (true, k))
            .chain((0..18).map(|k| (false, k)))
            .chain((5..30).map(|k| (true, k % 23)))
            .chain([(false, 99)])
            .collect();
        for (i, (insert, k)) in steps.into_iter().enumerate() {
            let v = i as u32;
            if insert {
                assert_eq!(small.insert(k, v), model.insert(k, v), "insert {k}");
            } else {
                assert_eq!(small.remove(&k), model.remove(&k), "remove {k}");
            }
            assert_eq!(small.len(), model.len());
            let mut want: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
            want.sort();
            assert_eq!(sorted(&small), want);
            assert!(model.keys().all(|k| small.get(k) == model.get(k)));
        }
    }

    #[test]
    fn a_small_map_holds_exactly_what_it_needs_and_frees_it_when_emptied() {
        let mut m = SmallMap::new();
        m.insert(1u32, 1u32);
        let Repr::Few(v) = &m.0 else { panic!() };
        assert_eq!(v.capacity(), 1);
        m.remove(&1);
        let Repr::Few(v) = &m.0 else { panic!() };
        assert_eq!(v.capacity(), 0);
    }

    #[test]
    fn turns_into_a_hash_map_past_few_and_back_at_half() {
        let mut m = SmallMap::new();
        for k in 0..=FEW as u32 {
            m.insert(k, k);
        }
        assert!(matches!(m.0, Repr::Many(_)));
        for k in 0..(FEW / 2) as u32 {
            m.remove(&k);
        }
        assert!(
            matches!(m.0, Repr::Many(_)),
            "{} entries still hashed",
            m.len()
        );
        m.remove(&(FEW as u32 / 2));
        assert!(matches!(m.0, Repr::Few(_)));
        assert_eq!(m.len(), FEW / 2);
    }
}
