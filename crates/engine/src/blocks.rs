//! Who holds which block of the KV pool, and the prefix cache.
//!
//! Every block has a reference count: the sequences whose tables list it. A full block can
//! also be *registered* under the hash of its contents: its tokens, chained with the hash of
//! the block before it (so equal hashes mean equal whole prefixes) and, in the first block, a
//! tenant salt (so one API key's prompts are never matched, nor their timing observable, by
//! another's). A new sequence whose prompt starts with registered blocks takes them instead of
//! computing them again. A registered block that no sequence holds stays cached until its
//! space is needed; the least recently released goes first.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use ward_models::cache::KV_BLOCK;

/// The hash of a block's contents and everything before it.
pub type BlockHash = u64;

pub struct BlockManager {
    /// Sequences holding each block.
    refs: Vec<u32>,
    /// Blocks with no holder and no registered contents.
    free: Vec<u32>,
    /// Registered blocks by hash, and each block's hash.
    by_hash: HashMap<BlockHash, u32>,
    hash_of: Vec<Option<BlockHash>>,
    /// Registered blocks with no holder, by when they were released (oldest first).
    idle: BTreeMap<u64, u32>,
    idle_since: Vec<u64>,
    clock: u64,
    /// Keyed per process (SipHash with random keys), so contents cannot be chosen to collide.
    hasher: RandomState,
}

impl BlockManager {
    pub fn new(n_blocks: usize) -> BlockManager {
        BlockManager {
            refs: vec![0; n_blocks],
            // Popped from the end: hand out low numbers first.
            free: (0..n_blocks as u32).rev().collect(),
            by_hash: HashMap::new(),
            hash_of: vec![None; n_blocks],
            idle: BTreeMap::new(),
            idle_since: vec![0; n_blocks],
            clock: 0,
            hasher: RandomState::new(),
        }
    }

    pub fn n_blocks(&self) -> usize {
        self.refs.len()
    }

    /// Blocks that can be handed out now (free, or cached with no holder).
    pub fn available(&self) -> usize {
        self.free.len() + self.idle.len()
    }

    /// Blocks held by at least one sequence.
    pub fn in_use(&self) -> usize {
        self.n_blocks() - self.available()
    }

    /// The hash of a full block of `tokens` following the block hashed `parent` (`None` for
    /// the first block, which is salted with the tenant's `salt` instead).
    pub fn hash(&self, parent: Option<BlockHash>, salt: &str, tokens: &[u32]) -> BlockHash {
        debug_assert_eq!(tokens.len(), KV_BLOCK);
        let mut h = self.hasher.build_hasher();
        match parent {
            Some(p) => p.hash(&mut h),
            None => salt.hash(&mut h),
        }
        tokens.hash(&mut h);
        h.finish()
    }

    /// The registered block with this hash, now also held by the caller.
    pub fn take_cached(&mut self, hash: BlockHash) -> Option<u32> {
        let block = *self.by_hash.get(&hash)?;
        self.hold(block);
        Some(block)
    }

    /// A block for the caller alone, or `None` if every block is held. Takes a free block
    /// first, else forgets the cached contents released longest ago.
    pub fn allocate(&mut self) -> Option<u32> {
        let block = match self.free.pop() {
            Some(b) => b,
            None => {
                let (_, b) = self.idle.pop_first()?;
                let hash = self.hash_of[b as usize]
                    .take()
                    .expect("idle blocks are registered");
                self.by_hash.remove(&hash);
                b
            }
        };
        self.refs[block as usize] = 1;
        Some(block)
    }

    fn hold(&mut self, block: u32) {
        let b = block as usize;
        if self.refs[b] == 0 {
            self.idle.remove(&self.idle_since[b]);
        }
        self.refs[b] += 1;
    }

    /// The caller no longer holds `block`.
    pub fn release(&mut self, block: u32) {
        let b = block as usize;
        assert!(
            self.refs[b] > 0,
            "block {block} released more often than held"
        );
        self.refs[b] -= 1;
        if self.refs[b] == 0 {
            if self.hash_of[b].is_some() {
                self.clock += 1;
                self.idle_since[b] = self.clock;
                self.idle.insert(self.clock, block);
            } else {
                self.free.push(block);
            }
        }
    }

    /// Offer the full, held `block` to the prefix cache under `hash`. If another block already
    /// has those contents, that one stays the cached copy.
    pub fn register(&mut self, block: u32, hash: BlockHash) {
        if self.hash_of[block as usize].is_none() && !self.by_hash.contains_key(&hash) {
            self.by_hash.insert(hash, block);
            self.hash_of[block as usize] = Some(hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_of(x: u32) -> Vec<u32> {
        vec![x; KV_BLOCK]
    }

    #[test]
    fn blocks_are_reused_by_contents_and_evicted_oldest_first() {
        let mut m = BlockManager::new(3);
        let h1 = m.hash(None, "a", &block_of(1));
        let h2 = m.hash(Some(h1), "a", &block_of(2));
        assert_ne!(h1, m.hash(None, "b", &block_of(1)), "salted per tenant");
        assert_ne!(h2, m.hash(None, "a", &block_of(2)), "chained to the prefix");

        let (b1, b2) = (m.allocate().unwrap(), m.allocate().unwrap());
        m.register(b1, h1);
        m.register(b2, h2);
        assert_eq!(m.take_cached(h1), Some(b1), "held blocks can be shared");
        m.release(b1);
        assert_eq!((m.available(), m.in_use()), (1, 2));
        m.release(b1);
        m.release(b2);
        assert_eq!(
            m.available(),
            3,
            "cached blocks with no holder can be handed out"
        );

        // The free block goes first, then b1 (released before b2), losing its contents.
        let c = m.allocate().unwrap();
        assert!(c != b1 && c != b2);
        assert_eq!(m.allocate(), Some(b1));
        assert_eq!(m.take_cached(h1), None);
        assert_eq!(m.take_cached(h2), Some(b2));
        assert_eq!(m.allocate(), None, "all held");
    }

    #[test]
    fn a_second_copy_of_cached_contents_is_not_registered() {
        let mut m = BlockManager::new(2);
        let h = m.hash(None, "", &block_of(7));
        let (a, b) = (m.allocate().unwrap(), m.allocate().unwrap());
        m.register(a, h);
        m.register(b, h);
        m.release(b);
        assert_eq!(m.allocate(), Some(b), "b went back to the free list");
        assert_eq!(m.take_cached(h), Some(a));
    }
}
