//! STM laws as quickcheck properties, each checked against a plain `Vec` model:
//!
//! - read-your-writes: a transaction sees its own writes, in order;
//! - an attempt that aborts (`abort`) or retries leaves no trace: values and versions are
//!   unchanged;
//! - `or_else(|tx| { writes; retry() }, b)` behaves exactly as `b` alone;
//! - transfers conserve the total, run sequentially or from several threads at once;
//! - a nested `atomically` joins the enclosing transaction, and a nested abort rolls back
//!   only the nested writes.
//!
//! Operations are generated as plain tuples so that quickcheck shrinks a failure to a
//! minimal sequence.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use concord_stm::{abort, atomically, atomically_or_err, retry, Stm, TVar, Transaction};
use quickcheck::{QuickCheck, TestResult};

/// One generated operation: `(kind, variable, operand)`.
type Op = (u8, u8, i32);

/// How many variables a property uses: at least 1, and up to 40 so that write sets cross
/// the STM's switch from a linear scan to a hash index (at 16 entries).
fn var_count(n: u8) -> usize {
    1 + usize::from(n) % 40
}

fn make_vars(n: usize, initial: &[i64]) -> Vec<TVar<i64>> {
    (0..n).map(|i| TVar::new(initial.get(i).copied().unwrap_or(i as i64))).collect()
}

fn model_of(vars: &[TVar<i64>]) -> Vec<i64> {
    vars.iter().map(TVar::read_atomic).collect()
}

fn versions_of(vars: &[TVar<i64>]) -> Vec<u64> {
    vars.iter().map(TVar::version).collect()
}

/// Applies `ops` inside a transaction and returns what they observed.
fn apply(tx: &mut Transaction<'_>, vars: &[TVar<i64>], ops: &[Op]) -> Stm<Vec<i64>> {
    let mut seen = Vec::new();
    for &(kind, var, x) in ops {
        let v = &vars[usize::from(var) % vars.len()];
        match kind % 5 {
            0 => tx.write(v, i64::from(x))?,
            1 => seen.push(tx.get(v)?),
            2 => seen.push(*tx.read(v)?),
            3 => tx.modify(v, |old| old.wrapping_add(i64::from(x)))?,
            _ => seen.push(tx.replace(v, i64::from(x))?),
        }
    }
    Ok(seen)
}

/// The same operations on the model.
fn apply_model(model: &mut [i64], ops: &[Op]) -> Vec<i64> {
    let mut seen = Vec::new();
    let n = model.len();
    for &(kind, var, x) in ops {
        let slot = &mut model[usize::from(var) % n];
        match kind % 5 {
            0 => *slot = i64::from(x),
            1 | 2 => seen.push(*slot),
            3 => *slot = slot.wrapping_add(i64::from(x)),
            _ => seen.push(std::mem::replace(slot, i64::from(x))),
        }
    }
    seen
}

fn quickcheck(tests: u64) -> QuickCheck {
    QuickCheck::new().tests(tests).max_tests(tests * 10)
}

#[test]
fn read_your_writes() {
    fn prop(n: u8, initial: Vec<i64>, ops: Vec<Op>) -> bool {
        let vars = make_vars(var_count(n), &initial);
        let mut model = model_of(&vars);
        let versions = versions_of(&vars);
        let expected = apply_model(&mut model, &ops);

        let seen = atomically(|tx| apply(tx, &vars, &ops));
        // Inside: every read saw the model's value at that point. After: the model.
        let committed = model_of(&vars);
        // Written variables all carry the commit's version; the others are untouched.
        let new_versions = versions_of(&vars);
        let mut written = vec![false; vars.len()];
        for &(kind, var, _) in &ops {
            let is_read = matches!(kind % 5, 1 | 2);
            written[usize::from(var) % vars.len()] |= !is_read;
        }
        let commit_version = new_versions.iter().zip(&written).find(|(_, &w)| w).map(|(v, _)| *v);
        let versions_ok =
            new_versions.iter().zip(&versions).zip(&written).all(|((new, old), &w)| {
                if w {
                    Some(*new) == commit_version && new > old
                } else {
                    new == old
                }
            });
        seen == expected && committed == model && versions_ok
    }
    quickcheck(300).quickcheck(prop as fn(u8, Vec<i64>, Vec<Op>) -> bool);
}

#[test]
fn aborted_attempt_leaves_no_trace() {
    fn prop(n: u8, initial: Vec<i64>, ops: Vec<Op>) -> bool {
        let vars = make_vars(var_count(n), &initial);
        let (model, versions) = (model_of(&vars), versions_of(&vars));
        let mut inside = model.clone();
        let expected = apply_model(&mut inside, &ops);
        let r: Result<(), Vec<i64>> = atomically_or_err(|tx| {
            let seen = apply(tx, &vars, &ops)?;
            abort(seen)
        });
        // The abort carries what the attempt saw (its own writes), and nothing is left.
        r == Err(expected) && model_of(&vars) == model && versions_of(&vars) == versions
    }
    quickcheck(300).quickcheck(prop as fn(u8, Vec<i64>, Vec<Op>) -> bool);
}

#[test]
fn retried_attempt_leaves_no_trace() {
    // The attempt writes, then waits (`retry`) for a gate. While it is blocked, nothing it
    // wrote is visible; once woken it takes the other path and commits nothing.
    fn prop(n: u8, initial: Vec<i64>, ops: Vec<Op>) -> bool {
        let vars = make_vars(var_count(n), &initial);
        let gate = TVar::new(false);
        let (model, versions) = (model_of(&vars), versions_of(&vars));
        let (retried_tx, retried_rx) = mpsc::channel();
        let waiter = {
            let (vars, gate) = (vars.clone(), gate.clone());
            thread::spawn(move || {
                atomically(|tx| {
                    if tx.get(&gate)? {
                        return Ok(());
                    }
                    apply(tx, &vars, &ops)?;
                    let r = retried_tx.clone();
                    tx.after_abort(move || {
                        let _ = r.send(());
                    });
                    retry()
                })
            })
        };
        retried_rx.recv_timeout(Duration::from_secs(10)).expect("the attempt retried");
        let untouched = model_of(&vars) == model && versions_of(&vars) == versions;
        atomically(|tx| tx.write(&gate, true));
        waiter.join().expect("the waiter was woken");
        untouched && model_of(&vars) == model && versions_of(&vars) == versions
    }
    quickcheck(50).quickcheck(prop as fn(u8, Vec<i64>, Vec<Op>) -> bool);
}

#[test]
fn or_else_of_a_retrying_branch_is_the_second_branch() {
    // On one set of variables run `or_else(a; retry, b)`, on an identical twin set run `b`:
    // results, final values and versions' movement must agree.
    fn prop(n: u8, initial: Vec<i64>, a: Vec<Op>, b: Vec<Op>) -> bool {
        let count = var_count(n);
        let left = make_vars(count, &initial);
        let right = make_vars(count, &initial);
        let got = atomically(|tx| {
            tx.or_else(
                |tx| {
                    apply(tx, &left, &a)?;
                    retry()
                },
                |tx| apply(tx, &left, &b),
            )
        });
        let want = atomically(|tx| apply(tx, &right, &b));
        let moved = |vars: &[TVar<i64>]| vars.iter().map(|v| v.version() > 0).collect::<Vec<_>>();
        got == want && model_of(&left) == model_of(&right) && moved(&left) == moved(&right)
    }
    quickcheck(300).quickcheck(prop as fn(u8, Vec<i64>, Vec<Op>, Vec<Op>) -> bool);
}

#[test]
fn or_else_of_a_committing_branch_is_the_first_branch() {
    // `or_else(a, b) == a` when `a` does not retry: `b` never runs.
    fn prop(n: u8, initial: Vec<i64>, a: Vec<Op>) -> bool {
        let count = var_count(n);
        let left = make_vars(count, &initial);
        let right = make_vars(count, &initial);
        let got = atomically(|tx| {
            tx.or_else(|tx| apply(tx, &left, &a), |_| -> Stm<Vec<i64>> { panic!("b ran") })
        });
        let want = atomically(|tx| apply(tx, &right, &a));
        got == want && model_of(&left) == model_of(&right)
    }
    quickcheck(200).quickcheck(prop as fn(u8, Vec<i64>, Vec<Op>) -> bool);
}

#[test]
fn nested_or_else_rolls_back_only_the_inner_branch() {
    // `outer; or_else(inner; retry, other)`: the outer writes survive the inner rollback.
    fn prop(n: u8, outer: Vec<Op>, inner: Vec<Op>, other: Vec<Op>) -> bool {
        let vars = make_vars(var_count(n), &[]);
        let mut model = model_of(&vars);
        let mut expected = apply_model(&mut model, &outer);
        expected.extend(apply_model(&mut model, &other));
        let seen = atomically(|tx| {
            let mut seen = apply(tx, &vars, &outer)?;
            seen.extend(tx.or_else(
                |tx| {
                    apply(tx, &vars, &inner)?;
                    retry()
                },
                |tx| apply(tx, &vars, &other),
            )?);
            Ok(seen)
        });
        seen == expected && model_of(&vars) == model
    }
    quickcheck(200).quickcheck(prop as fn(u8, Vec<Op>, Vec<Op>, Vec<Op>) -> bool);
}

/// A transfer: `(thread, from, to, amount)`.
type Transfer = (u8, u8, u8, u8);

#[derive(Debug, PartialEq)]
struct Insufficient;

/// Moves `amount` from `from` to `to`, or aborts (committing nothing) if `from` cannot pay.
fn transfer(accounts: &[TVar<u64>], (_, from, to, amount): Transfer) -> Result<(), Insufficient> {
    let n = accounts.len();
    let (from, to, amount) =
        (&accounts[usize::from(from) % n], &accounts[usize::from(to) % n], u64::from(amount));
    atomically_or_err(|tx| {
        let balance = tx.get(from)?;
        if balance < amount {
            return abort(Insufficient);
        }
        tx.write(from, balance - amount)?;
        tx.modify(to, |b| b + amount)?;
        Ok(())
    })
}

fn accounts(n: u8) -> Vec<TVar<u64>> {
    (0..2 + usize::from(n) % 15).map(|_| TVar::new(100)).collect()
}

#[test]
fn sequential_transfers_match_the_model() {
    fn prop(n: u8, transfers: Vec<Transfer>) -> bool {
        let accounts = accounts(n);
        let mut model: Vec<u64> = accounts.iter().map(TVar::read_atomic).collect();
        let len = model.len();
        for &t in &transfers {
            let (_, from, to, amount) = t;
            let (from, to, amount) =
                (usize::from(from) % len, usize::from(to) % len, u64::from(amount));
            let ok = model[from] >= amount;
            if ok {
                model[from] -= amount;
                model[to] += amount;
            }
            if transfer(&accounts, t).is_ok() != ok {
                return false;
            }
        }
        accounts.iter().map(TVar::read_atomic).collect::<Vec<_>>() == model
    }
    quickcheck(300).quickcheck(prop as fn(u8, Vec<Transfer>) -> bool);
}

#[test]
fn concurrent_transfers_conserve_the_total() {
    // Transfers are dealt to 1-4 threads by their first field and run interleaved; each
    // thread also checks the total inside read-only transactions as it goes.
    fn prop(n: u8, threads: u8, transfers: Vec<Transfer>) -> TestResult {
        if transfers.is_empty() {
            return TestResult::discard();
        }
        let accounts = accounts(n);
        let total = 100 * accounts.len() as u64;
        let threads = 1 + usize::from(threads) % 4;
        let ok = thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let mine: Vec<Transfer> = transfers
                        .iter()
                        .copied()
                        .filter(|&(thread, ..)| usize::from(thread) % threads == t)
                        .collect();
                    let accounts = &accounts;
                    s.spawn(move || {
                        let mut ok = true;
                        for tr in mine {
                            let _ = transfer(accounts, tr);
                            let sum: u64 = atomically(|tx| {
                                accounts.iter().try_fold(0, |sum, a| Ok(sum + tx.get(a)?))
                            });
                            ok &= sum == total;
                        }
                        ok
                    })
                })
                .collect();
            handles.into_iter().all(|h| h.join().expect("transfer thread"))
        });
        let sum: u64 = accounts.iter().map(TVar::read_atomic).sum();
        TestResult::from_bool(ok && sum == total)
    }
    quickcheck(100).quickcheck(prop as fn(u8, u8, Vec<Transfer>) -> TestResult);
}

#[test]
fn nested_transactions_join_the_outer_one() {
    // outer: `a`, nested `atomically`: `b`, nested `atomically_or_err` that aborts: `c`,
    // outer again: `d`. The commit equals the model of `a; b; d`, and every read inside saw
    // the model at its point (including `c`'s reads of its own writes).
    fn prop(n: u8, a: Vec<Op>, b: Vec<Op>, c: Vec<Op>, d: Vec<Op>) -> bool {
        let vars = make_vars(var_count(n), &[]);
        let mut model = model_of(&vars);
        let mut expected = apply_model(&mut model, &a);
        expected.extend(apply_model(&mut model, &b));
        let mut aborted = model.clone();
        let expected_c = apply_model(&mut aborted, &c);
        expected.extend(apply_model(&mut model, &d));

        let (seen, seen_c) = atomically(|tx| {
            let mut seen = apply(tx, &vars, &a)?;
            seen.extend(atomically(|tx| apply(tx, &vars, &b)));
            let r: Result<(), Vec<i64>> = atomically_or_err(|tx| {
                let seen = apply(tx, &vars, &c)?;
                abort(seen)
            });
            let seen_c = r.expect_err("the nested transaction aborts");
            seen.extend(apply(tx, &vars, &d)?);
            Ok((seen, seen_c))
        });
        seen == expected && seen_c == expected_c && model_of(&vars) == model
    }
    quickcheck(200).quickcheck(prop as fn(u8, Vec<Op>, Vec<Op>, Vec<Op>, Vec<Op>) -> bool);
}

#[test]
fn an_outer_abort_discards_the_nested_commits() {
    fn prop(n: u8, a: Vec<Op>, b: Vec<Op>) -> bool {
        let vars = make_vars(var_count(n), &[]);
        let (model, versions) = (model_of(&vars), versions_of(&vars));
        let r: Result<(), ()> = atomically_or_err(|tx| {
            apply(tx, &vars, &a)?;
            atomically(|tx| apply(tx, &vars, &b));
            abort(())
        });
        r.is_err() && model_of(&vars) == model && versions_of(&vars) == versions
    }
    quickcheck(200).quickcheck(prop as fn(u8, Vec<Op>, Vec<Op>) -> bool);
}
