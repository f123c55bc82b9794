//! Source selection: RFC 5905 s.11.2.1 intersection (falseticker rejection), s.11.2.2
//! clustering, and s.11.2.3 combining, the last by inverse offset variance.
//!
//! Units: seconds for offsets, distances and jitter; seconds^2 for variances.

/// Distance weight of one stratum when ranking survivors (RFC 5905 MAXDIST), seconds.
pub const MAXDIST: f64 = 1.0;

/// One source offered to selection.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Caller's identifier (e.g. association index), echoed in the result.
    pub id: usize,
    /// Offset, seconds (server - local).
    pub offset: f64,
    /// Root distance (root delay / 2 + root dispersion + peer delay / 2 + peer dispersion
    /// + jitter), the half-width of the correctness interval, seconds.
    pub root_distance: f64,
    /// Peer jitter, seconds.
    pub jitter: f64,
    pub stratum: u8,
    /// Configured `prefer`: becomes system peer whenever it survives.
    pub prefer: bool,
    /// Variance of `offset`, seconds^2 (from the filter); 0 or non-finite = unknown.
    pub offset_variance: f64,
}

/// Outcome of a selection round.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Id of the system peer (the best survivor, or the preferred one).
    pub system_peer: usize,
    /// Ids that survived clustering, best first; they make up the combined offset.
    pub survivors: Vec<usize>,
    /// Ids whose correctness interval meets the majority interval (truechimers).
    pub truechimers: Vec<usize>,
    /// Combined offset, seconds.
    pub offset: f64,
    /// System jitter: the system peer's jitter combined with the survivors' spread, seconds.
    pub jitter: f64,
    /// Variance of the combined offset, seconds^2.
    pub offset_variance: f64,
}

fn sane(c: &Candidate) -> bool {
    c.offset.is_finite() && c.root_distance.is_finite() && c.root_distance >= 0.0
}

/// The majority (intersection) interval of RFC 5905 s.11.2.1: the smallest interval that
/// contains points of at least `voters - f` correctness intervals with at most `f`
/// falsetickers, for the least `f < voters/2`. `voters` (at least `cands.len()`) counts every
/// source that has a say; those not among `cands` (heard but not yet measurable) count as
/// falsetickers, so a cluster must be a majority of all voters, not just of the candidates
/// at hand. `None` when no majority agrees.
fn intersection(cands: &[&Candidate], voters: usize) -> Option<(f64, f64)> {
    let n = cands.len();
    let voters = voters.max(n);
    let absent = voters - n;
    // (value, kind): kind -1 = lower end, 0 = midpoint, +1 = upper end.
    let mut ends: Vec<(f64, i32)> = Vec::with_capacity(3 * n);
    for c in cands {
        ends.push((c.offset - c.root_distance, -1));
        ends.push((c.offset, 0));
        ends.push((c.offset + c.root_distance, 1));
    }
    ends.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    // The absent voters are falsetickers already: start at f = absent.
    let mut allow = absent;
    while 2 * allow < voters {
        let need = (voters - allow) as i32;
        let (mut found, mut chime) = (absent, 0);
        let mut low = f64::INFINITY;
        for &(v, kind) in &ends {
            chime -= kind;
            if chime >= need {
                low = v;
                break;
            }
            if kind == 0 {
                found += 1;
            }
        }
        chime = 0;
        let mut high = f64::NEG_INFINITY;
        for &(v, kind) in ends.iter().rev() {
            chime += kind;
            if chime >= need {
                high = v;
                break;
            }
            if kind == 0 {
                found += 1;
            }
        }
        if found <= allow && low <= high {
            return Some((low, high));
        }
        allow += 1;
    }
    None
}

/// The majority interval of `candidates` among `voters` sources (see [`select_among`]), or
/// `None` when no majority of the voters agrees. Used to let one group of sources (the
/// configured ones) decide which others may join selection.
pub fn majority_interval(candidates: &[Candidate], voters: usize) -> Option<(f64, f64)> {
    let cands: Vec<&Candidate> = candidates.iter().filter(|c| sane(c)).collect();
    if cands.is_empty() {
        return None;
    }
    intersection(&cands, voters)
}

/// Selection jitter of survivor `i` against the others (RFC 5905 s.11.2.2), seconds.
fn selection_jitter(offsets: &[f64], i: usize) -> f64 {
    let n = offsets.len();
    if n < 2 {
        return 0.0;
    }
    let sum: f64 = offsets.iter().map(|o| (o - offsets[i]).powi(2)).sum();
    (sum / (n - 1) as f64).sqrt()
}

/// Runs intersection, clustering (down to `min_survivors`, at least 1) and combining.
/// Candidates with non-finite values are ignored. `None` if no majority agrees.
pub fn select(candidates: &[Candidate], min_survivors: usize) -> Option<Selection> {
    select_among(candidates, 0, min_survivors)
}

/// [`select`] where the majority is taken of `voters` sources (at least the sane candidates): the
/// sources that were heard but are not candidates yet (a filter still filling) count against
/// every cluster, so that, e.g., two agreeing sources out of five never make a majority
/// because the other three were not measurable yet.
///
/// Truechimers are the candidates whose offset (the interval's midpoint) lies in the majority
/// interval: the intersection admits at most `f` midpoints outside it, and those are the
/// falsetickers, even when a wide interval (a source whose register holds a jump) still
/// reaches into the majority interval.
pub fn select_among(
    candidates: &[Candidate],
    voters: usize,
    min_survivors: usize,
) -> Option<Selection> {
    let cands: Vec<&Candidate> = candidates.iter().filter(|c| sane(c)).collect();
    if cands.is_empty() {
        return None;
    }
    let (low, high) = intersection(&cands, voters)?;
    let mut truechimers: Vec<&Candidate> = cands
        .iter()
        .copied()
        .filter(|c| c.offset >= low && c.offset <= high)
        .collect();
    if truechimers.is_empty() {
        return None;
    }
    let merit = |c: &Candidate| f64::from(c.stratum) * MAXDIST + c.root_distance;
    truechimers.sort_by(|a, b| merit(a).total_cmp(&merit(b)).then(a.id.cmp(&b.id)));
    let truechimer_ids = truechimers.iter().map(|c| c.id).collect();

    // Clustering: drop the survivor farthest from the rest while that spread exceeds the
    // smallest peer jitter and more than `min_survivors` remain.
    let mut survivors = truechimers;
    let min_survivors = min_survivors.max(1);
    while survivors.len() > min_survivors {
        let offsets: Vec<f64> = survivors.iter().map(|c| c.offset).collect();
        let (worst, max_sel) = (0..survivors.len())
            .map(|i| (i, selection_jitter(&offsets, i)))
            .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        let min_peer = survivors
            .iter()
            .map(|c| c.jitter)
            .fold(f64::INFINITY, f64::min);
        if max_sel <= min_peer {
            break;
        }
        survivors.remove(worst);
    }

    let system = survivors
        .iter()
        .find(|c| c.prefer)
        .copied()
        .unwrap_or(survivors[0]);

    // Combining: inverse-variance weights when every survivor has a usable variance, else
    // the RFC's inverse root distance.
    let use_var = survivors
        .iter()
        .all(|c| c.offset_variance.is_finite() && c.offset_variance > 0.0);
    let weight = |c: &Candidate| {
        if use_var {
            1.0 / c.offset_variance
        } else {
            1.0 / c.root_distance.max(1e-9)
        }
    };
    let wsum: f64 = survivors.iter().map(|c| weight(c)).sum();
    let offset = survivors.iter().map(|c| weight(c) * c.offset).sum::<f64>() / wsum;
    let spread = survivors
        .iter()
        .map(|c| weight(c) * (c.offset - system.offset).powi(2))
        .sum::<f64>()
        / wsum;
    let jitter = (spread + system.jitter.powi(2)).sqrt();
    let offset_variance = if use_var {
        1.0 / wsum
    } else {
        system.offset_variance.max(0.0)
    };
    let finite = |x: f64, d: f64| if x.is_finite() { x } else { d };
    Some(Selection {
        system_peer: system.id,
        survivors: survivors.iter().map(|c| c.id).collect(),
        truechimers: truechimer_ids,
        offset: finite(offset, system.offset),
        jitter: finite(jitter, system.jitter),
        offset_variance: finite(offset_variance, 0.0),
    })
}

/// Selection where configured sources take precedence over dynamic ones (symmetric
/// passive, broadcast): when the configured candidates alone agree as a majority of the
/// configured voters, a dynamic candidate joins only if its interval meets theirs, so any
/// number of dynamic sources agreeing on another time cannot outvote the configured ones.
/// Without such a configured majority, every source votes alike. `configured[k]` tells
/// whether `candidates[k]` is configured; `pending` counts heard but not yet measurable
/// (configured, dynamic) sources, which vote against every cluster. Attack guide S2 (c).
pub fn select_with_precedence(
    candidates: &[Candidate],
    configured: &[bool],
    pending: (usize, usize),
    min_survivors: usize,
) -> Option<Selection> {
    let own: Vec<Candidate> = candidates
        .iter()
        .zip(configured)
        .filter(|(_, &c)| c)
        .map(|(c, _)| *c)
        .collect();
    let own_voters = own.len() + pending.0;
    if own.len() < candidates.len() {
        if let Some((low, high)) = majority_interval(&own, own_voters) {
            let admitted: Vec<Candidate> = candidates
                .iter()
                .zip(configured)
                .filter(|(c, &conf)| {
                    conf || (c.offset + c.root_distance >= low
                        && c.offset - c.root_distance <= high)
                })
                .map(|(c, _)| *c)
                .collect();
            let voters = admitted.len() + pending.0;
            return select_among(&admitted, voters, min_survivors);
        }
    }
    select_among(
        candidates,
        candidates.len() + pending.0 + pending.1,
        min_survivors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: usize, offset: f64, dist: f64) -> Candidate {
        Candidate {
            id,
            offset,
            root_distance: dist,
            jitter: 1e-4,
            stratum: 2,
            prefer: false,
            offset_variance: 1e-8,
        }
    }

    #[test]
    fn three_good_one_bad_excludes_the_bad() {
        let cands = [
            c(0, 0.001, 0.010),
            c(1, -0.002, 0.010),
            c(7, 0.200, 0.010),
            c(3, 0.000, 0.010),
        ];
        let sel = select(&cands, 3).unwrap();
        assert!(!sel.truechimers.contains(&7));
        assert!(!sel.survivors.contains(&7));
        assert_eq!(sel.truechimers.len(), 3);
        assert!(sel.offset.abs() < 0.002);
    }

    #[test]
    fn two_against_two_has_no_majority() {
        let cands = [
            c(0, 0.0, 0.01),
            c(1, 0.001, 0.01),
            c(2, 0.5, 0.01),
            c(3, 0.501, 0.01),
        ];
        assert!(select(&cands, 1).is_none());
    }

    #[test]
    fn single_candidate_and_empty() {
        let sel = select(&[c(5, 0.3, 0.1)], 3).unwrap();
        assert_eq!(sel.system_peer, 5);
        assert_eq!(sel.offset, 0.3);
        assert!(select(&[], 1).is_none());
        let mut bad = c(1, f64::NAN, 0.1);
        assert!(select(&[bad], 1).is_none());
        bad.offset = 0.0;
        bad.root_distance = f64::INFINITY;
        assert!(select(&[bad], 1).is_none());
    }

    #[test]
    fn inverse_variance_combining_and_prefer() {
        let mut a = c(0, 0.0, 0.01);
        let mut b = c(1, 0.003, 0.01);
        a.offset_variance = 1e-8;
        b.offset_variance = 3e-8;
        b.prefer = true;
        let sel = select(&[a, b], 2).unwrap();
        // Weights 3:1 -> 0.75 ms.
        assert!((sel.offset - 0.00075).abs() < 1e-9);
        assert!((sel.offset_variance - 0.75e-8).abs() < 1e-15);
        assert_eq!(sel.system_peer, 1);
    }

    #[test]
    fn clustering_drops_the_outlying_truechimer() {
        // All intervals overlap, but one offset sits far from a tight group.
        let cands = [
            c(0, 0.0000, 0.05),
            c(1, 0.0001, 0.05),
            c(2, -0.0001, 0.05),
            c(3, 0.0400, 0.05),
        ];
        let sel = select(&cands, 3).unwrap();
        assert_eq!(sel.truechimers.len(), 4);
        assert_eq!(sel.survivors.len(), 3);
        assert!(!sel.survivors.contains(&3));
    }

    #[test]
    fn two_agreeing_of_five_voters_are_no_majority() {
        // Falsetickers 3 of 5: only the two agreeing sources are measurable yet.
        let cands = [c(0, -0.050, 0.002), c(1, -0.050, 0.002), c(3, 1.95, 0.003)];
        assert!(
            select(&cands, 1).is_some(),
            "2 of 3 candidates is a majority"
        );
        assert!(select_among(&cands, 5, 1).is_none(), "2 of 5 voters is not");
        assert!(majority_interval(&cands, 5).is_none());
        // Three agreeing of five voters are.
        let cands = [c(0, 0.0, 0.002), c(1, 0.0005, 0.002), c(2, -0.0005, 0.002)];
        let sel = select_among(&cands, 5, 1).unwrap();
        assert_eq!(sel.truechimers.len(), 3);
    }

    #[test]
    fn a_wide_interval_reaching_the_majority_is_still_a_falseticker() {
        // A server that jumped 120 ms: the jump in its register widens its interval so much
        // that it covers the honest pair, but its offset lies outside their intersection.
        let cands = [c(0, 0.0, 0.0005), c(1, 0.0001, 0.0005), c(2, 0.120, 0.125)];
        let sel = select(&cands, 3).unwrap();
        assert_eq!(sel.truechimers.len(), 2);
        assert!(!sel.survivors.contains(&2));
        assert!(sel.offset.abs() < 0.0002, "combined {}", sel.offset);
    }
}
