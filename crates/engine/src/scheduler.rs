//! Continuous batching: every step is one batched forward pass over all running sequences,
//! so the weights are read once a step for all of them.
//!
//! A step: drop sequences whose client left or whose deadline passed; admit waiting
//! sequences (first come, first served) while the KV pool has blocks for their whole prompt;
//! give the decoding sequences their next tokens and the prefilling ones chunks of their
//! prompts, never more than `max_batch_tokens` tokens in all (so a long prompt never stalls
//! everyone's decoding for long; `max_prefill_tokens` when nobody is decoding), half of them
//! kept for prompts while any is being read (the decoding sequences left out take the next
//! turn); find a block for every sequence whose next token starts one, preempting the newest
//! sequences if the pool is short (they free their blocks and are computed again later from
//! their tokens, most of it from the prefix cache); run the pass; sample each sequence that
//! reached its last token; register newly filled blocks in the prefix cache.
//!
//! A sequence's tokens depend only on its own prompt, parameters and seed: the forward pass
//! computes every token exactly as alone, and each sequence samples with its own random state.

use std::collections::VecDeque;

use crate::api::Tenant;
use std::time::Instant;

use ward_models::cache::{kv_blocks_for, KV_BLOCK};
use ward_models::{BatchItem, KvPool, LoadedModel, SeqKv, Workspace};

use crate::api::{Event, EventSender, Usage};
use crate::blocks::{BlockHash, BlockManager};
use crate::generate::{Continuation, FinishReason, GenerateParams};

/// Limits of the scheduler.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Blocks of `KV_BLOCK` positions in the KV pool.
    pub kv_blocks: usize,
    /// Tokens in one forward pass while some sequence is decoding: its next token waits for
    /// the whole pass, so this bounds the inter-token latency a long prompt can cause.
    pub max_batch_tokens: usize,
    /// Tokens in one forward pass when every sequence is reading its prompt (nobody waits
    /// for a token, so larger chunks only make the first tokens come sooner).
    pub max_prefill_tokens: usize,
    /// Sequences running at once.
    pub max_running: usize,
}

/// A request as the scheduler receives it: validated, tokenized, fitting the pool.
pub struct Job {
    pub id: String,
    pub prompt: Vec<u32>,
    pub params: GenerateParams,
    /// Keeps prefix-cache entries apart between tenants.
    pub salt: String,
    pub tenant: Tenant,
    pub deadline: Option<Instant>,
    pub events: EventSender,
}

/// What the scheduler holds now, for load reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerLoad {
    pub waiting: usize,
    pub running: usize,
    pub kv_blocks_used: usize,
    pub kv_blocks_total: usize,
    pub prefix_hits: u64,
    pub prefix_lookups: u64,
    /// Steps run (forward passes) and sequences preempted, since the start.
    pub steps: u64,
    pub preemptions: u64,
    /// The most tokens one step has run since the start (never over the configured bound).
    pub max_step_tokens: usize,
}

struct Sequence {
    job: Job,
    /// The prompt, then every sampled token; the cache holds all but the last.
    tokens: Vec<u32>,
    kv: SeqKv,
    out: Continuation,
    /// Hashes of the leading full blocks of `tokens` (matched or registered).
    hashes: Vec<BlockHash>,
    /// Prompt tokens found in the prefix cache at first admission.
    cached_tokens: Option<usize>,
    started: Instant,
    first_token: Option<Instant>,
}

impl Sequence {
    /// Tokens not yet in the cache (at least the last sampled one).
    fn pending(&self) -> usize {
        self.tokens.len() - self.kv.len()
    }
}

/// Virtual times of start-time fair queueing between tenants (see
/// [`Scheduler::next_waiting`]).
#[derive(Default)]
struct FairTurns {
    /// Each tenant's next turn.
    turns: std::collections::HashMap<String, f64>,
    /// The turn of the last sequence started.
    now: f64,
}

pub struct Scheduler<'m> {
    lm: &'m LoadedModel,
    config: SchedulerConfig,
    pool: KvPool,
    blocks: BlockManager,
    ws: Workspace,
    waiting: VecDeque<Sequence>,
    fair: FairTurns,
    /// Oldest first; preemption takes from the end.
    running: Vec<Sequence>,
    steps: u64,
    preemptions: u64,
    max_step_tokens: usize,
    /// Where the next step's decode turns start among the decoding sequences, when there are
    /// more of them than the step has room for.
    decode_turn: usize,
    /// Full prompt blocks found in the prefix cache, and looked for, at admissions.
    prefix_hits: u64,
    prefix_lookups: u64,
}

impl<'m> Scheduler<'m> {
    pub fn new(lm: &'m LoadedModel, config: SchedulerConfig) -> Scheduler<'m> {
        Scheduler {
            lm,
            config,
            pool: lm.model.new_pool(config.kv_blocks),
            blocks: BlockManager::new(config.kv_blocks),
            ws: Workspace::default(),
            waiting: VecDeque::new(),
            fair: FairTurns::default(),
            running: Vec::new(),
            steps: 0,
            preemptions: 0,
            max_step_tokens: 0,
            decode_turn: 0,
            prefix_hits: 0,
            prefix_lookups: 0,
        }
    }

    pub fn add(&mut self, job: Job) {
        let out = Continuation::new(&job.params);
        self.waiting.push_back(Sequence {
            tokens: job.prompt.clone(),
            kv: SeqKv::new(usize::MAX),
            out,
            hashes: Vec::new(),
            cached_tokens: None,
            started: Instant::now(),
            first_token: None,
            job,
        });
    }

    /// Nothing waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    pub fn load(&self) -> SchedulerLoad {
        SchedulerLoad {
            waiting: self.waiting.len(),
            running: self.running.len(),
            kv_blocks_used: self.blocks.in_use(),
            kv_blocks_total: self.blocks.n_blocks(),
            prefix_hits: self.prefix_hits,
            prefix_lookups: self.prefix_lookups,
            steps: self.steps,
            preemptions: self.preemptions,
            max_step_tokens: self.max_step_tokens,
        }
    }

    /// Run one step; false if there was nothing to run. `admitted` is told the load once the
    /// waiting sequences that fit have been admitted, before the forward pass (whose first
    /// tokens their clients may answer with new requests).
    pub fn step(&mut self, admitted: impl FnOnce(SchedulerLoad)) -> bool {
        self.drop_departed();
        self.admit();
        admitted(self.load());
        let chunks = self.plan();
        if chunks.is_empty() {
            return false;
        }
        self.steps += 1;
        let tokens = chunks.iter().map(|&(_, n)| n).sum();
        self.max_step_tokens = self.max_step_tokens.max(tokens);
        // A bug in the model code must not take the engine down for everyone: contain it and
        // fail the sequences of this batch, whose caches may be half written.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_batch(&chunks)));
        let error = match result {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "internal error in the engine".to_string(),
        };
        tracing::error!(error = %error, sequences = chunks.len(), "forward pass failed");
        for seq in std::mem::take(&mut self.running) {
            seq.job.events.send(Event::Failed(error.clone()));
            self.release(seq);
        }
        true
    }

    /// Forget sequences whose client has gone (they free their blocks at once) and end those
    /// past their deadline.
    fn drop_departed(&mut self) {
        let now = Instant::now();
        let expired = |s: &Sequence| s.job.deadline.is_some_and(|d| now >= d);
        let gone = |s: &Sequence| s.job.events.is_cancelled() || expired(s);
        if !self.waiting.iter().chain(&self.running).any(gone) {
            return;
        }
        let (left, waiting): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(gone);
        let (left_running, running) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(gone);
        (self.waiting, self.running) = (waiting.into(), running);
        for seq in left.into_iter().chain::<Vec<_>>(left_running) {
            let finish = if expired(&seq) {
                seq.job.events.send(Event::TimedOut);
                FinishReason::TimedOut
            } else {
                FinishReason::Cancelled
            };
            self.finish_log(&seq, finish);
            self.release(seq);
        }
    }

    /// Move waiting sequences to running while there are blocks for all their tokens, in
    /// weighted turns between tenants (see [`Scheduler::next_waiting`]). Stops at the first
    /// that does not fit, so a long prompt is not passed over for ever by shorter ones. The
    /// blocks the running sequences need for their next tokens stay theirs: a sequence
    /// admitted into them would be preempted in the same step.
    fn admit(&mut self) {
        let reserved: usize = self
            .running
            .iter()
            .map(|s| kv_blocks_for(s.kv.len() + s.pending()).saturating_sub(s.kv.blocks.len()))
            .sum();
        while self.running.len() < self.config.max_running {
            let Some(next) = self.next_waiting() else {
                break;
            };
            let mut seq = self.waiting.remove(next).expect("an index of waiting");
            if !self.take_blocks(&mut seq, reserved) {
                self.waiting.insert(next, seq);
                break;
            }
            self.took_turn(&seq.job.tenant);
            seq.cached_tokens.get_or_insert(seq.kv.len());
            self.running.push(seq);
        }
    }

    /// The waiting sequence to start next, by start-time fair queueing: each tenant's turn
    /// comes at its virtual time, which each start advances by 1/weight, so tenants take
    /// turns in proportion to their weights however many each has waiting; within a tenant,
    /// the oldest first. A tenant that was idle joins at the current virtual time, with no
    /// credit saved up.
    fn next_waiting(&self) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (i, seq) in self.waiting.iter().enumerate() {
            let turn = self.turn(&seq.job.tenant);
            if best.is_none_or(|(b, _)| turn < b) {
                best = Some((turn, i));
            }
        }
        best.map(|(_, i)| i)
    }

    fn turn(&self, tenant: &Tenant) -> f64 {
        let own = self.fair.turns.get(&tenant.name).copied().unwrap_or(0.0);
        own.max(self.fair.now)
    }

    /// A sequence of `tenant` starts: its next turn comes 1/weight later.
    fn took_turn(&mut self, tenant: &Tenant) {
        let turn = self.turn(tenant);
        self.fair.now = turn;
        self.fair.turns.insert(
            tenant.name.clone(),
            turn + 1.0 / f64::from(tenant.weight.max(1)),
        );
    }

    /// Blocks for all of `seq`'s tokens: those of its leading full blocks found in the prefix
    /// cache (keeping at least one token to compute, for the logits), fresh ones for the rest.
    /// False, holding nothing, if the pool has too few beyond `reserved`.
    fn take_blocks(&mut self, seq: &mut Sequence, reserved: usize) -> bool {
        let reusable = (seq.tokens.len() - 1) / KV_BLOCK;
        let mut blocks = Vec::new();
        seq.hashes.clear();
        for i in 0..reusable {
            let hash = self.blocks.hash(
                seq.hashes.last().copied(),
                &seq.job.salt,
                &seq.tokens[i * KV_BLOCK..(i + 1) * KV_BLOCK],
            );
            match self.blocks.take_cached(hash) {
                Some(b) => {
                    blocks.push(b);
                    seq.hashes.push(hash);
                }
                None => break,
            }
        }
        let cached = blocks.len();
        let need = kv_blocks_for(seq.tokens.len()) - cached;
        if self.blocks.available() < need + reserved {
            blocks.into_iter().for_each(|b| self.blocks.release(b));
            seq.hashes.clear();
            return false;
        }
        blocks.extend((0..need).map(|_| self.blocks.allocate().expect("counted")));
        // Counted once admitted (a request may wait through several tries).
        self.prefix_hits += cached as u64;
        self.prefix_lookups += (cached + usize::from(cached < reusable)) as u64;
        seq.kv = SeqKv::new(usize::MAX);
        seq.kv.blocks = blocks;
        seq.kv.assume_written(cached * KV_BLOCK);
        true
    }

    /// How many tokens each running sequence runs this step (by index), with blocks for all of
    /// them: never more than the step's bound in all. While prompts are being read, half the
    /// bound is theirs (oldest first), so they progress beside any number of decoding
    /// sequences; the decoding sequences share the rest, in turns when they are more.
    fn plan(&mut self) -> Vec<(usize, usize)> {
        loop {
            let decoding: Vec<usize> = (0..self.running.len())
                .filter(|&i| self.running[i].pending() == 1)
                .collect();
            let prompt_tokens: usize = self
                .running
                .iter()
                .map(|s| s.pending())
                .filter(|&n| n > 1)
                .sum();
            let bound = if decoding.is_empty() {
                self.config
                    .max_prefill_tokens
                    .max(self.config.max_batch_tokens)
            } else {
                self.config.max_batch_tokens
            };
            let prompt_share = prompt_tokens.min(bound.div_ceil(2));
            let decode_slots = decoding.len().min(bound - prompt_share);
            let first = self.decode_turn % decoding.len().max(1);
            let mut chunks: Vec<(usize, usize)> = (0..decode_slots)
                .map(|k| (decoding[(first + k) % decoding.len()], 1))
                .collect();
            let mut budget = bound - decode_slots;
            for (i, seq) in self.running.iter().enumerate() {
                if seq.pending() > 1 && budget > 0 {
                    let n = seq.pending().min(budget);
                    chunks.push((i, n));
                    budget -= n;
                }
            }
            // A decode step may start a new block; the newest sequences make room if need be.
            let short = chunks.iter().find(|&&(i, n)| {
                let kv = &self.running[i].kv;
                kv.len() + n > kv.capacity()
            });
            let Some(&(i, _)) = short else {
                self.decode_turn = (first + decode_slots) % decoding.len().max(1);
                chunks.sort_unstable();
                return chunks;
            };
            match self.blocks.allocate() {
                Some(b) => self.running[i].kv.blocks.push(b),
                None => self.preempt_newest(),
            }
        }
    }

    /// Put the newest running sequence back at the head of the queue, freeing its blocks; it
    /// will be computed again from its tokens (the prompt and what it has sampled).
    fn preempt_newest(&mut self) {
        let mut seq = self.running.pop().expect("a sequence holds blocks");
        self.preemptions += 1;
        tracing::info!(request_id = %seq.job.id, tokens = seq.tokens.len(), "preempted: KV cache full");
        Self::register(&mut self.blocks, &mut seq);
        for b in std::mem::take(&mut seq.kv.blocks) {
            self.blocks.release(b);
        }
        seq.kv = SeqKv::new(usize::MAX);
        self.waiting.push_front(seq);
    }

    fn run_batch(&mut self, chunks: &[(usize, usize)]) -> Result<(), ward_models::ModelError> {
        let lm = self.lm;
        let mut want_logits = Vec::with_capacity(chunks.len());
        let mut items: Vec<BatchItem> = Vec::with_capacity(chunks.len());
        let mut next = chunks.iter().peekable();
        for (i, seq) in self.running.iter_mut().enumerate() {
            let Some(&(_, n)) = next.next_if(|&&(j, _)| j == i) else {
                continue;
            };
            let start = seq.kv.len();
            let last = start + n == seq.tokens.len();
            want_logits.push((i, last));
            items.push(BatchItem {
                tokens: &seq.tokens[start..start + n],
                seq: &mut seq.kv,
                n_logits: usize::from(last),
            });
        }
        let logits = lm
            .model
            .forward_batch(&mut items, &mut self.pool, &mut self.ws)?;
        drop(items);
        let n_vocab = logits.n_vocab;
        let sampled: Vec<usize> = want_logits
            .iter()
            .filter(|&&(_, last)| last)
            .map(|&(i, _)| i)
            .collect();
        let rows = logits.data.chunks_exact_mut(n_vocab);
        Self::prepare(self.lm, &mut self.running, &sampled, rows);
        let mut rows = logits.data.chunks_exact_mut(n_vocab);
        let mut finished = Vec::new();
        for &i in &sampled {
            let seq = &mut self.running[i];
            let row = rows.next().expect("a row per sequence that asked");
            let step = seq.out.sample(lm, row, &seq.tokens);
            seq.tokens.push(step.token);
            seq.first_token.get_or_insert_with(Instant::now);
            if let Some(lp) = step.logprob {
                seq.job.events.send(Event::Logprob(lp));
            }
            if !step.text.is_empty() {
                seq.job.events.send(Event::Text(step.text));
            }
            if let Some(finish) = step.finish {
                finished.push((i, finish));
            }
        }
        for seq in &mut self.running {
            Self::register(&mut self.blocks, seq);
        }
        // Remove from the back so the indices stay valid.
        for &(i, finish) in finished.iter().rev() {
            let seq = self.running.remove(i);
            seq.job.events.send(Event::Finished(Usage {
                finish,
                prompt_tokens: seq.job.prompt.len(),
                cached_tokens: seq.cached_tokens.unwrap_or(0),
                completion_tokens: seq.out.generated(),
            }));
            self.finish_log(&seq, finish);
            self.release(seq);
        }
        Ok(())
    }

    /// The first half of each sampled sequence's step (`Continuation::prepare`: the raw
    /// logits kept for log-probabilities, the JSON mask), `rows` in `sampled`'s order. Two or
    /// more constrained sequences have their masks computed side by side on the kernel
    /// threads: a mask takes 50 to 450 us on a 49k to 262k-token vocabulary.
    fn prepare<'r>(
        lm: &LoadedModel,
        running: &mut [Sequence],
        sampled: &[usize],
        mut rows: impl Iterator<Item = &'r mut [f32]>,
    ) {
        let mut work: Vec<(&mut Continuation, &mut [f32])> = Vec::with_capacity(sampled.len());
        let mut next = sampled.iter().peekable();
        for (i, seq) in running.iter_mut().enumerate() {
            if next.next_if(|&&j| j == i).is_some() {
                let row = rows.next().expect("a row per sampled sequence");
                work.push((&mut seq.out, row));
            }
        }
        if work.iter().filter(|(out, _)| out.is_constrained()).count() < 2 {
            work.into_iter().for_each(|(out, row)| out.prepare(lm, row));
        } else {
            ward_kernels::pool::global().for_each_chunk(&mut work, 1, |_, one| {
                one.iter_mut().for_each(|(out, row)| out.prepare(lm, row))
            });
        }
    }

    /// Offer each newly filled block of `seq` to the prefix cache.
    fn register(blocks: &mut BlockManager, seq: &mut Sequence) {
        let full = seq.kv.len() / KV_BLOCK;
        while seq.hashes.len() < full {
            let i = seq.hashes.len();
            let tokens = &seq.tokens[i * KV_BLOCK..(i + 1) * KV_BLOCK];
            let hash = blocks.hash(seq.hashes.last().copied(), &seq.job.salt, tokens);
            blocks.register(seq.kv.blocks[i], hash);
            seq.hashes.push(hash);
        }
    }

    fn release(&mut self, mut seq: Sequence) {
        for b in std::mem::take(&mut seq.kv.blocks) {
            self.blocks.release(b);
        }
    }

    /// Counts and timings only: the text stays out of the log.
    fn finish_log(&self, seq: &Sequence, finish: FinishReason) {
        let generated = seq.out.generated();
        let ttft = seq.first_token.map(|t| t - seq.started);
        let decode_s = seq.first_token.map_or(0.0, |t| t.elapsed().as_secs_f64());
        tracing::info!(
            request_id = %seq.job.id,
            prompt_tokens = seq.job.prompt.len(),
            cached_tokens = seq.cached_tokens.unwrap_or(0),
            completion_tokens = generated,
            finish = ?finish,
            ttft_ms = ttft.map_or(0, |t| t.as_millis() as u64),
            decode_tok_s = format_args!("{:.1}", generated.saturating_sub(1) as f64 / decode_s.max(1e-9)),
            "generated"
        );
    }
}
