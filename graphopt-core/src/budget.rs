//! One resource budget per command: how much memory may be held at once and how much work
//! (element operations) may be done, whatever the model file asks for.
//!
//! graphopt runs inside `cargo build` on models downloaded from the internet, so sizes come
//! from attributes, dims and values an attacker chose. Every allocation sized by them asks
//! the budget first ([`alloc`], [`hold`]), and every loop sized by them charges its iterations
//! ([`work`]); a request over the budget is an error, which the layers above turn into one line
//! naming the node.
//!
//! - Memory is counted at its real in-memory size: elements times the element's size in
//!   memory (a string costs its `Bytes` handle plus its contents), whether or not the elements
//!   exist yet. Values the evaluator keeps are *held* ([`Charge`]s, released when the value is
//!   dropped); what a kernel allocates while it runs is *scratch*, released when the kernel's
//!   [`scratch_scope`] ends.
//! - Work is cumulative over the command: a while loop whose body is heavy is stopped by it,
//!   not by its iteration count.
//! - A budget is entered for a stretch of code with [`Budget::enter`]; the functions of this
//!   module consult the budget entered on the current thread. Library entry points
//!   (evaluation, folding, freezing, verifying) enter a default one, sized by their input,
//!   when the caller entered none ([`enter_or_default`]).
//! - Defaults: memory `max(256 MiB, 8 x the input size)` for the whole process
//!   ([`PROCESS_RESERVE`] of it set aside for what requests do not count), work `max(2^27,
//!   256 x the input size)` element operations (2^27 is a few seconds of the evaluator even in
//!   the dev profile build scripts run in; a real model's work scales with its weights);
//!   [`Settings`] reads
//!   overrides from `GRAPHOPT_MEMORY_BUDGET` and `GRAPHOPT_WORK_BUDGET` (the CLI and
//!   graphopt-build add their own flags and options).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Environment variable overriding the memory budget (bytes; `512M`, `2G`, `unlimited`).
pub const MEMORY_ENV: &str = "GRAPHOPT_MEMORY_BUDGET";
/// Environment variable overriding the work budget (element operations; `4G`, `unlimited`).
pub const WORK_ENV: &str = "GRAPHOPT_WORK_BUDGET";

/// The smallest default memory budget.
pub const MIN_MEMORY: u64 = 256 << 20;
/// Default memory budget per byte of input, above [`MIN_MEMORY`].
pub const MEMORY_PER_INPUT_BYTE: u64 = 8;
/// The smallest default work budget, in element operations.
pub const MIN_WORK: u64 = 1 << 27;

/// What a process needs besides the memory requests count (its code, stacks, allocator
/// slack, the decoded graph's bookkeeping): a budget from [`Settings`] covers the whole
/// process, so this much of it is set aside.
pub const PROCESS_RESERVE: u64 = 32 << 20;
/// Default work budget per byte of input, above [`MIN_WORK`].
pub const WORK_PER_INPUT_BYTE: u64 = 256;

/// Memory every value costs besides its elements (array header, shape, reference count), so
/// that a flood of empty tensors is not free.
pub const VALUE_OVERHEAD: u64 = 128;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "needs {} more memory with {} in use, over the memory budget of {} (for a model you trust, raise {})",
        size(*requested), size(*in_use), size(*limit), remedy.memory
    )]
    Memory {
        requested: u64,
        in_use: u64,
        limit: u64,
        remedy: Remedy,
    },
    #[error(
        "needs {requested} more element operations after {spent}, over the work budget of {limit} (for a model you trust, raise {})",
        remedy.work
    )]
    Work {
        requested: u64,
        spent: u64,
        limit: u64,
        remedy: Remedy,
    },
    #[error("the size of {0} overflows")]
    Overflow(String),
    /// A refusal recorded while code ran [`at`] a node: names it.
    #[error("{at}: {source}")]
    At {
        at: String,
        source: Box<BudgetError>,
    },
    #[error("{name}: '{value}' is not a size (expected a number with an optional K, M, G or T suffix, or 'unlimited')")]
    BadSetting { name: String, value: String },
}

/// What a refusal tells the user to raise: the settings of whoever set the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remedy {
    /// Where the memory limit is set.
    pub memory: &'static str,
    /// Where the work limit is set.
    pub work: &'static str,
}

impl Remedy {
    /// graphopt's own commands: the CLI's flags, graphopt-build's Model options and the
    /// environment they both read.
    pub const TOOLS: Remedy = Remedy {
        memory: "GRAPHOPT_MEMORY_BUDGET, --memory_budget or Model::memory_budget",
        work: "GRAPHOPT_WORK_BUDGET, --work_budget or Model::work_budget",
    };
}

/// A byte count for messages and summaries: `512 B`, `3.0 KiB`, `256.0 MiB` (binary units up
/// to PiB, one decimal); `unlimited` for `u64::MAX`, the budget that sets no limit.
pub fn size(bytes: u64) -> String {
    if bytes == u64::MAX {
        return "unlimited".into();
    }
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses a size: a number with an optional `K`, `M`, `G`, `T` suffix (binary multiples,
/// optionally followed by `B` or `iB`), or `unlimited`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("unlimited") {
        return Some(u64::MAX);
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, suffix) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match suffix
        .trim()
        .trim_end_matches(['b', 'B'])
        .trim_end_matches(['i', 'I'])
    {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// Budget settings before the input is known: explicit limits, or `None` for the default
/// that scales with the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Bytes that may be held at once.
    pub memory: Option<u64>,
    /// Element operations per command.
    pub work: Option<u64>,
}

impl Settings {
    /// The settings `GRAPHOPT_MEMORY_BUDGET` and `GRAPHOPT_WORK_BUDGET` give (unset: default).
    pub fn from_env() -> Result<Self, BudgetError> {
        let read = |name: &str| -> Result<Option<u64>, BudgetError> {
            match std::env::var(name) {
                Ok(value) if !value.trim().is_empty() => {
                    parse_size(&value).map(Some).ok_or(BudgetError::BadSetting {
                        name: name.into(),
                        value,
                    })
                }
                _ => Ok(None),
            }
        };
        Ok(Settings {
            memory: read(MEMORY_ENV)?,
            work: read(WORK_ENV)?,
        })
    }

    /// These settings with each limit `over` gives replacing this one's.
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            memory: over.memory.or(self.memory),
            work: over.work.or(self.work),
        }
    }

    /// The budget for a command whose input is `input_bytes` long: the memory limit is the
    /// whole process's, [`PROCESS_RESERVE`] of it set aside.
    pub fn budget_for(self, input_bytes: u64) -> Budget {
        let memory = self.memory.unwrap_or_else(|| default_memory(input_bytes));
        let reserve = if memory >= 4 * PROCESS_RESERVE {
            PROCESS_RESERVE
        } else {
            0
        };
        Budget::with_reserve(
            memory,
            self.work.unwrap_or_else(|| default_work(input_bytes)),
            reserve,
        )
    }
}

/// The default memory budget for an input of `input_bytes`.
pub fn default_memory(input_bytes: u64) -> u64 {
    MIN_MEMORY.max(input_bytes.saturating_mul(MEMORY_PER_INPUT_BYTE))
}

/// The default work budget for an input of `input_bytes`.
pub fn default_work(input_bytes: u64) -> u64 {
    MIN_WORK.max(input_bytes.saturating_mul(WORK_PER_INPUT_BYTE))
}

#[derive(Debug)]
struct Inner {
    memory: u64,
    /// Part of `memory` that requests cannot have (see [`PROCESS_RESERVE`]).
    reserve: u64,
    work: u64,
    held: AtomicU64,
    peak: AtomicU64,
    spent: AtomicU64,
    /// The first refusal since [`Budget::take_failure`] last looked.
    failure: Mutex<Option<BudgetError>>,
    remedy: Remedy,
}

/// A memory and work budget, shared by its clones.
#[derive(Debug, Clone)]
pub struct Budget(Arc<Inner>);

impl Default for Budget {
    /// The default for an input of unknown size: [`MIN_MEMORY`] and [`MIN_WORK`].
    fn default() -> Self {
        Budget::for_input(0)
    }
}

impl Budget {
    /// A budget of `memory` bytes held at once and `work` element operations (`u64::MAX`:
    /// unlimited).
    pub fn new(memory: u64, work: u64) -> Self {
        Budget::with_reserve(memory, work, 0)
    }

    /// [`Budget::new`] with `reserve` bytes of `memory` set aside for what requests do not
    /// count.
    pub fn with_reserve(memory: u64, work: u64, reserve: u64) -> Self {
        Budget::build(memory, work, reserve, Remedy::TOOLS)
    }

    /// A budget of `memory` bytes and `work` element operations set by an application, whose
    /// refusals point at `remedy` instead of graphopt's own settings.
    pub fn set_by(memory: u64, work: u64, remedy: Remedy) -> Self {
        Budget::build(memory, work, 0, remedy)
    }

    fn build(memory: u64, work: u64, reserve: u64, remedy: Remedy) -> Self {
        Budget(Arc::new(Inner {
            memory,
            reserve: reserve.min(memory),
            work,
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            spent: AtomicU64::new(0),
            failure: Mutex::new(None),
            remedy,
        }))
    }

    /// No limits (still counted, so [`Budget::peak`] reports).
    pub fn unlimited() -> Self {
        Budget::new(u64::MAX, u64::MAX)
    }

    /// The default budget for an input of `input_bytes`, environment overrides ignored.
    pub fn for_input(input_bytes: u64) -> Self {
        Settings::default().budget_for(input_bytes)
    }

    /// The memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.0.memory
    }

    /// The work limit in element operations.
    pub fn work_limit(&self) -> u64 {
        self.0.work
    }

    /// The most memory held and allocated at once so far, as counted.
    pub fn peak(&self) -> u64 {
        self.0.peak.load(Ordering::Relaxed)
    }

    /// Work done so far.
    pub fn spent(&self) -> u64 {
        self.0.spent.load(Ordering::Relaxed)
    }

    /// Memory held by live [`Charge`]s.
    pub fn held(&self) -> u64 {
        self.0.held.load(Ordering::Relaxed)
    }

    /// The first refusal since the last call, if any (callers that treat a kernel failure as
    /// "leave the node alone" use it to tell a budget refusal, which must stop the command).
    pub fn take_failure(&self) -> Option<BudgetError> {
        self.0.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// The first refusal since [`Budget::take_failure`] last looked, left in place.
    pub fn failure(&self) -> Option<BudgetError> {
        self.0.failure.lock().ok().and_then(|f| f.clone())
    }

    fn refuse(&self, error: BudgetError) -> BudgetError {
        if let Ok(mut failure) = self.0.failure.lock() {
            failure.get_or_insert_with(|| match LABELS.with(|l| l.borrow().last().cloned()) {
                Some(at) => BudgetError::At {
                    at,
                    source: Box::new(error.clone()),
                },
                None => error.clone(),
            });
        }
        error
    }

    fn check_memory(&self, requested: u64, scratch: u64) -> Result<u64, BudgetError> {
        let in_use = self
            .held()
            .saturating_add(scratch)
            .saturating_add(self.0.reserve);
        let total = in_use.saturating_add(requested);
        if total > self.0.memory {
            return Err(self.refuse(BudgetError::Memory {
                requested,
                in_use,
                limit: self.0.memory,
                remedy: self.0.remedy,
            }));
        }
        self.0.peak.fetch_max(total, Ordering::Relaxed);
        Ok(total)
    }

    fn charge_work(&self, units: u64) -> Result<(), BudgetError> {
        let spent = self.spent();
        if spent.saturating_add(units) > self.0.work {
            return Err(self.refuse(BudgetError::Work {
                requested: units,
                spent,
                limit: self.0.work,
                remedy: self.0.remedy,
            }));
        }
        self.0.spent.fetch_add(units, Ordering::Relaxed);
        Ok(())
    }

    /// Holds `bytes` until the returned charge is dropped.
    pub fn reserve(&self, bytes: u64) -> Result<Charge, BudgetError> {
        let scratch = with_top(|top| Some(top.scratch)).unwrap_or(0);
        self.check_memory(bytes, scratch)?;
        self.0.held.fetch_add(bytes, Ordering::Relaxed);
        Ok(Charge {
            budget: Some(self.clone()),
            bytes,
        })
    }

    /// Runs `f` with this budget as the current thread's budget (the previous one returns
    /// afterwards, even if `f` panics).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        STACK.with(|s| {
            s.borrow_mut().push(Entered {
                budget: self.clone(),
                scratch: 0,
            })
        });
        let _leave = Leave;
        f()
    }
}

/// Memory held for a value; released when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Option<Budget>,
    bytes: u64,
}

impl Charge {
    /// A charge of nothing (no budget entered).
    pub fn none() -> Self {
        Charge {
            budget: None,
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.0.held.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

struct Entered {
    budget: Budget,
    scratch: u64,
}

thread_local! {
    static STACK: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
    /// What the code running on this thread works on ([`at`]), innermost last.
    static LABELS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct Unlabel;

impl Drop for Unlabel {
    fn drop(&mut self) {
        LABELS.with(|l| {
            l.borrow_mut().pop();
        });
    }
}

/// Runs `f` with every refusal it leads to recorded as [`BudgetError::At`] `label` (such as
/// "node 'bn' (FusedBatchNormV3)"): for rewrites that skip what the budget refuses, so that
/// the transform's error names the node. The error returned to `f` is left as it is.
pub fn at<T>(label: impl Into<String>, f: impl FnOnce() -> T) -> T {
    LABELS.with(|l| l.borrow_mut().push(label.into()));
    let _unlabel = Unlabel;
    f()
}

struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        STACK.with(|s| {
            s.borrow_mut().pop();
        });
    }
}

fn with_top<T>(f: impl FnOnce(&mut Entered) -> Option<T>) -> Option<T> {
    STACK.with(|s| s.borrow_mut().last_mut().and_then(f))
}

/// The budget entered on this thread, if any.
pub fn current() -> Option<Budget> {
    with_top(|top| Some(top.budget.clone()))
}

/// Runs `f` under the budget entered on this thread, or, if there is none, under a default
/// budget for an input of `input_bytes()` bytes (with the environment's overrides).
pub fn enter_or_default<T>(input_bytes: impl FnOnce() -> u64, f: impl FnOnce() -> T) -> T {
    if current().is_some() {
        return f();
    }
    let settings = Settings::from_env().unwrap_or_default();
    settings.budget_for(input_bytes()).enter(f)
}

/// Allocates `bytes` of scratch memory (released when the enclosing [`scratch_scope`] ends,
/// or with the entered budget). Free when no budget is entered.
pub fn alloc(bytes: u64) -> Result<(), BudgetError> {
    let Some((budget, scratch)) = with_top(|top| Some((top.budget.clone(), top.scratch))) else {
        return Ok(());
    };
    budget.check_memory(bytes, scratch)?;
    with_top(|top| {
        top.scratch = top.scratch.saturating_add(bytes);
        Some(())
    });
    Ok(())
}

/// Scratch memory for `count` items of `item_bytes` each, checked for overflow.
pub fn alloc_items(count: usize, item_bytes: usize, what: &str) -> Result<(), BudgetError> {
    let bytes = (count as u128) * (item_bytes as u128);
    let bytes = u64::try_from(bytes).map_err(|_| BudgetError::Overflow(what.into()))?;
    alloc(bytes)
}

/// Holds `bytes` on the current budget until the charge is dropped.
pub fn hold(bytes: u64) -> Result<Charge, BudgetError> {
    match current() {
        Some(budget) => budget.reserve(bytes),
        None => Ok(Charge::none()),
    }
}

/// Holds `bytes` on the current budget if it has room for them, without recording a refusal:
/// for memory kept only to be reused, which is dropped instead when there is no room.
pub fn hold_if_room(bytes: u64) -> Option<Charge> {
    let Some((budget, scratch)) = with_top(|top| Some((top.budget.clone(), top.scratch))) else {
        return Some(Charge::none());
    };
    let in_use = budget
        .held()
        .saturating_add(scratch)
        .saturating_add(budget.0.reserve);
    if in_use.saturating_add(bytes) > budget.0.memory {
        return None;
    }
    budget.reserve(bytes).ok()
}

/// Charges `units` element operations to the current budget.
pub fn work(units: u64) -> Result<(), BudgetError> {
    match current() {
        Some(budget) => budget.charge_work(units),
        None => Ok(()),
    }
}

/// Charges `units` element operations, given as a count that may not fit in a u64.
pub fn work_items(units: u128) -> Result<(), BudgetError> {
    work(u64::try_from(units).unwrap_or(u64::MAX))
}

/// Runs `f`; the scratch memory it allocates is released afterwards.
pub fn scratch_scope<T>(f: impl FnOnce() -> T) -> T {
    let saved = with_top(|top| Some(top.scratch));
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(saved) = self.0 {
                with_top(|top| {
                    top.scratch = saved;
                    Some(())
                });
            }
        }
    }
    let _restore = Restore(saved);
    f()
}

/// The first refusal of the current budget since the last call (see [`Budget::take_failure`]).
pub fn take_failure() -> Option<BudgetError> {
    current().and_then(|b| b.take_failure())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1 gb"), Some(1 << 30));
        assert_eq!(parse_size("unlimited"), Some(u64::MAX));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1X"), None);
        assert_eq!(parse_size("99999999999999T"), None);
    }

    #[test]
    fn sizes_format() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(256 << 20), "256.0 MiB");
        assert_eq!(size((3 << 30) + (1 << 29)), "3.5 GiB");
        assert_eq!(size(2048 << 40), "2.0 PiB");
        assert_eq!(size(u64::MAX - 1), "16384.0 PiB");
        assert_eq!(size(u64::MAX), "unlimited");
    }

    #[test]
    fn memory_is_held_and_released() {
        let budget = Budget::new(1000, 1000);
        budget.enter(|| {
            let a = hold(600).expect("fits");
            assert!(hold(600).is_err());
            drop(a);
            let _b = hold(600).expect("fits again");
            scratch_scope(|| {
                assert!(alloc(300).is_ok());
                assert!(alloc(300).is_err());
            });
            assert!(alloc(300).is_ok());
            assert!(take_failure().is_some());
            assert!(take_failure().is_none());
        });
        assert_eq!(budget.held(), 0);
        assert!(budget.peak() >= 900);
    }

    #[test]
    fn a_refusal_at_a_node_is_recorded_naming_it() {
        let budget = Budget::new(1000, 1000);
        budget.enter(|| {
            let returned = at("node 'x' (Mul)", || alloc(2000)).unwrap_err();
            // What the rewrite sees is the plain refusal; what is recorded names the node.
            assert!(returned.to_string().starts_with("needs "), "{returned}");
            let recorded = take_failure().unwrap().to_string();
            assert!(recorded.starts_with("node 'x' (Mul): needs "), "{recorded}");
            // Outside the label, nothing is added.
            assert!(alloc(2000).is_err());
            assert!(take_failure().unwrap().to_string().starts_with("needs "));
        });
    }

    #[test]
    fn work_accumulates() {
        let budget = Budget::new(u64::MAX, 100);
        budget.enter(|| {
            assert!(work(60).is_ok());
            assert!(work(60).is_err());
            assert!(work(40).is_ok());
        });
        // Nothing entered: nothing refused.
        assert!(work(u64::MAX).is_ok());
        assert!(alloc(u64::MAX).is_ok());
    }

    #[test]
    fn defaults_scale_with_the_input() {
        assert_eq!(Budget::for_input(0).memory_limit(), MIN_MEMORY);
        // The process reserve is set aside from the default.
        assert!(Budget::for_input(0)
            .enter(|| alloc(MIN_MEMORY - PROCESS_RESERVE / 2))
            .is_err());
        assert_eq!(Budget::for_input(1 << 30).memory_limit(), 8 << 30);
        let settings = Settings {
            memory: Some(5),
            work: None,
        };
        assert_eq!(settings.budget_for(1 << 30).memory_limit(), 5);
        // Work: 2^27 element operations at least, else 256 per input byte.
        assert_eq!(Budget::for_input(0).work_limit(), 1 << 27);
        assert_eq!(Budget::for_input(1 << 19).work_limit(), 1 << 27);
        assert_eq!(Budget::for_input(1 << 20).work_limit(), 1 << 28);
        assert_eq!(
            Settings::default().budget_for(1 << 30).work_limit(),
            1 << 38
        );
        let settings = Settings {
            memory: None,
            work: Some(7),
        };
        assert_eq!(settings.budget_for(1 << 30).work_limit(), 7);
    }
}
