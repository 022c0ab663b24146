//! From per-glyph class probabilities to plate text, against the plate formats of a region.
//!
//! Formats are written with `L` (letter), `N` (digit) and `A` (either). Where a format fixes a
//! position to letters or digits, the best symbol of that kind wins, which is what resolves the
//! classic confusions (0/O, 1/I, 8/B, 5/S, 2/Z, 6/G) without a table: the classifier's second
//! choice is usually the right one of the other kind.

use std::sync::LazyLock;

use super::Region;
use super::classifier::{CLASSES, NOISE, SYMBOLS};

/// Probabilities of one glyph.
pub type Probs = [f32; CLASSES];

/// A glyph this likely to be "not a character" is dropped.
const NOISE_DROP: f32 = 0.5;

/// A glyph inside a row may be passed over when its likeliest symbol is less likely than this.
const SKIP_BELOW: f32 = 0.7;

/// Plate formats per region. `eu` and `us` vary by country and state, so they are length
/// bounds over any symbols; `br` has the national (LLLNNNN) and Mercosur (LLLNLNN) formats.
/// `C` is a letter of a Czech region ([`CZECH_REGIONS`]) and `E` a letter of Spain's serials
/// ([`SPANISH_LETTERS`]), letters where a reading's format is told.
fn formats(region: Region) -> &'static [&'static str] {
    match region {
        Region::Br => &["LLLNNNN", MERCOSUR],
        // The national formats shared by most single-line European plates (FR/IT/HR/RS
        // LLNNNLL, ES NNNNEEE, UK LLNNLLL, PL LLNNNNN/LLLNNNN, CZ NCNNNNN/NCLNNNN, BE NLLLNNN,
        // PT NNLLNN ...), then any text.
        Region::Eu => &[
            "LLNNNLL", "LLNNNNLL", "LLNNNNL", "LLNNNL", "NNNNEEE", "LLNNLLL", "LLLNNNN", "LLNNNNN",
            "NCNNNNN", "NCLNNNN", "NLLLNNN", "NNLLNN", "LLNNLL", "NNNNLL", "AAAA", "AAAAA",
            "AAAAAA", "AAAAAAA", "AAAAAAAA",
        ],
        // The serial formats of the most populous states (CA NLLLNNN; TX, NY, PA, OH, MI, GA,
        // NC, VA LLLNNNN; many LLLNNN or NNNLLL), then any text (vanity plates, other states).
        Region::Us => &[
            "NLLLNNN", "LLLNNNN", "LLLNNN", "NNNLLL", "AAAA", "AAAAA", "AAAAAA", "AAAAAAA",
            "AAAAAAAA",
        ],
        // Free text; `decode` reads for an unknown country with every region's formats.
        Region::Auto => &["AAAA", "AAAAA", "AAAAAA", "AAAAAAA", "AAAAAAAA"],
    }
}

/// How much a format is preferred over free text: a region's own formats win even against
/// a stray glyph beside the plate (a band, a bolt) that free text would swallow. US plates
/// are often vanity or of unlisted states (a weaker prior), as are Europe's rarer formats
/// ([`EU_COMMON`]); Brazil's Mercosur format is newer
/// and rarer on the road than the national one, so it wins only when its fifth glyph is
/// clearly a letter. Read for an unknown country (`asked` is `Auto`), California's NLLLNNN,
/// the commonest US serial, weighs as much as Europe's common formats: at the weaker prior a
/// stray glyph after it (a bolt, a sticker) made a European LLLNNNN of its last six
/// (`4EEU387` read `EEU3871`); and Europe's rarer formats weigh half what they weigh read
/// for Europe: US serials and vanity plates of every state fit them with a look-alike or an
/// emblem taken in (DC's `BR1932` read `BR193Z`, Florida's `I404MY` read `4034MY`).
fn prior(region: Region, asked: Region, fmt: &str) -> f32 {
    if fmt.contains('A') {
        if region == Region::Us {
            us_length_prior(fmt.len())
        } else {
            0.0
        }
    } else if fmt == MERCOSUR {
        0.27
    } else if region == Region::Eu && !EU_COMMON.contains(&fmt) && asked == Region::Auto {
        // Europe's rarer formats, for an unknown country.
        0.15
    } else if region == Region::Us && (asked != Region::Auto || fmt != "NLLLNNN")
        || region == Region::Eu && !EU_COMMON.contains(&fmt)
    {
        // US formats and Europe's rarer ones.
        0.3
    } else {
        0.45
    }
}

/// The European formats of the most plates on the road (France and Italy LLNNNLL, Spain
/// NNNNEEE, the UK LLNNLLL, Poland LLLNNNN and LLNNNNN, Czechia NCNNNNN): where a glyph could
/// be either kind (`0`/`O`, `1`/`I`, `8`/`B`), a reading in one of them beats one in a rarer
/// format that differs only there.
const EU_COMMON: &[&str] = &[
    "LLNNNLL", "NNNNEEE", "LLNNLLL", "LLLNNNN", "LLNNNNN", "NCNNNNN",
];

/// How much a free US reading of `n` glyphs is preferred: a tenth of the log of its length's
/// share among the 751 labelled US plates of the training crops (4: 33, 5: 70, 6: 430, 7: 198,
/// other: 5 or fewer), relative to six, the commonest.
fn us_length_prior(n: usize) -> f32 {
    let count: f32 = match n {
        4 => 33.0,
        5 => 70.0,
        6 => 430.0,
        7 => 198.0,
        _ => 5.0,
    };
    0.1 * (count / 430.0).ln()
}

/// How many times each symbol (in [`SYMBOLS`] order) occurs in the 4551 characters of the 751
/// labelled US plates of the training crops (`ocr-us`): digits about three times as often as
/// each letter, and `I`, `O`, `Q` seldom (several states leave them out of their serials).
const US_SYMBOL_COUNTS: [u16; 36] = [
    316, 283, 252, 236, 250, 231, 228, 206, 203, 227, // 0-9
    210, 129, 111, 77, 98, 82, 85, 85, 47, 66, 77, 89, 94, // A-M
    100, 16, 82, 28, 87, 79, 105, 67, 44, 69, 72, 65, 55, // N-Z
];

/// How much each symbol's probability is multiplied by, reading a US plate: the square root
/// of its share of [`US_SYMBOL_COUNTS`] relative to an even share. The classifier learnt from
/// about two synthetic examples (every symbol alike) to one real US glyph, so it takes the
/// symbols for about equally common: a glyph it finds as like an `I` as a `1` is far likelier
/// a `1` on a US plate. The root leans half way (in log-odds): the real examples already
/// taught part of it, and correcting fully for a two-thirds even mix took the few US plates
/// with an `O` for a `0`.
static US_SYMBOL_WEIGHTS: LazyLock<[f32; 36]> = LazyLock::new(|| {
    let total: f32 = US_SYMBOL_COUNTS.iter().map(|&n| f32::from(n)).sum();
    let even = total / US_SYMBOL_COUNTS.len() as f32;
    US_SYMBOL_COUNTS.map(|n| (f32::from(n) / even).sqrt())
});

/// A glyph's probabilities for a US plate ([`US_SYMBOL_WEIGHTS`]); the symbols keep their
/// total, "not a character" its probability.
fn lean_to_us_symbols(p: &Probs) -> Probs {
    let symbols = 0..SYMBOLS.len();
    let before: f32 = p[symbols.clone()].iter().sum();
    let mut q = *p;
    for (v, w) in q[symbols.clone()].iter_mut().zip(US_SYMBOL_WEIGHTS.iter()) {
        *v *= w;
    }
    let after: f32 = q[symbols.clone()].iter().sum();
    if after > 0.0 {
        q[symbols].iter_mut().for_each(|v| *v *= before / after);
    }
    q
}

/// Brazil's Mercosur format.
const MERCOSUR: &str = "LLLNLNN";

/// The letters of Spain's serials (since 2000): consonants but `Q` (`2858GAB` is no Spanish
/// plate).
const SPANISH_LETTERS: &[u8] = b"BCDFGHJKLMNPRSTVWXYZ";

/// The letters of Czechia's regions, the second symbol of its plates (`1B8 0338` is South
/// Moravia's): no `Q` or `O` there (`4069160` is no Czech `4Q69160`).
const CZECH_REGIONS: &[u8] = b"ABCEHJKLMPSTUZ";

/// The kind a format's symbol stands for: `L` (a letter) or `N` (a digit), `A` (either).
fn kind(format_symbol: u8) -> u8 {
    if matches!(format_symbol, b'C' | b'E') {
        b'L'
    } else {
        format_symbol
    }
}

fn allowed(kind: u8, class: usize) -> bool {
    match kind {
        b'L' => SYMBOLS[class].is_ascii_uppercase(),
        b'C' => CZECH_REGIONS.contains(&SYMBOLS[class]),
        b'E' => SPANISH_LETTERS.contains(&SYMBOLS[class]),
        b'N' => SYMBOLS[class].is_ascii_digit(),
        _ => true,
    }
}

/// A decoded plate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// Geometric mean of the chosen symbols' probabilities, lowered for each glyph the format
    /// forced ([`forced_glyphs`]).
    pub confidence: f32,
    /// Indices (into the glyphs given) of the symbols used.
    pub glyphs: Vec<usize>,
    /// Ranked symbols per used glyph (symbol, probability), best first.
    pub guesses: Vec<Vec<(char, f32)>>,
    /// Next-best texts (one glyph changed), best first.
    pub alternatives: Vec<(String, f32)>,
    /// The region whose format matched.
    pub region: Region,
    /// The format matched (`L` a letter, `N` a digit), empty for free text.
    pub format: String,
}

/// The regions whose formats `Auto` tries: all of them, each format with its region's prior
/// and weighed as its region weighs a glyph of the other kind, except that Brazil's are not
/// the law when the country is unknown ([`mass_weight`]).
const AUTO_REGIONS: [Region; 3] = [Region::Br, Region::Eu, Region::Us];

/// Decodes `glyphs` (left to right) for `region`; `Auto` tries the formats of every region
/// ([`AUTO_REGIONS`]) and free text.
pub fn decode(glyphs: &[Probs], region: Region) -> Option<Decoded> {
    decode_marked(glyphs, &[], region)
}

/// How much a format reading gains for each mark between two of its glyphs (a dot, a dash)
/// where the format's kind of symbol changes, and loses for each where it does not.
const MARK_WEIGHT: f32 = 0.15;

/// [`decode`] knowing which neighbouring glyphs have a mark between them (`marks[i]`: between
/// glyphs `i` and `i + 1`; missing ones count as none). Plates put their dots and dashes
/// between groups, where letters turn to digits (Brazil's `ODJ·1599`, France's `AB-123-CD`,
/// New York's `ABC-1234`): a mark tells Brazil's LLLNNNN from California's NLLLNNN when the
/// glyphs are `0`/`O` and `1`/`I` alike.
pub fn decode_marked(glyphs: &[Probs], marks: &[bool], region: Region) -> Option<Decoded> {
    let leaning: Vec<Probs>;
    let glyphs = if region == Region::Us {
        leaning = glyphs.iter().map(lean_to_us_symbols).collect();
        &leaning
    } else {
        glyphs
    };
    let kept: Vec<usize> = (0..glyphs.len())
        .filter(|&i| glyphs[i][NOISE] < NOISE_DROP)
        .collect();
    let mut best: Option<(f32, &str, Vec<usize>, Region)> = None;
    let regions: &[Region] = if region == Region::Auto {
        &AUTO_REGIONS
    } else {
        std::slice::from_ref(&region)
    };
    for &r in regions {
        for fmt in formats(r) {
            let n = fmt.len();
            if kept.len() < n {
                continue;
            }
            // Every run of `n` consecutive kept glyphs is a reading of this format, and so is
            // every run of `n + 1` without one glyph inside it (an emblem between a plate's
            // groups that passed for a glyph).
            let mut runs: Vec<Vec<usize>> = (0..=kept.len() - n)
                .map(|start| kept[start..start + n].to_vec())
                .collect();
            if kept.len() > n {
                for start in 0..kept.len() - n {
                    for skip in 1..n {
                        if super::best_symbol(&glyphs[kept[start + skip]]) >= SKIP_BELOW {
                            continue;
                        }
                        let mut run = kept[start..start + n + 1].to_vec();
                        run.remove(skip);
                        runs.push(run);
                    }
                }
            }
            for window in runs {
                let log: f32 = window
                    .iter()
                    .zip(fmt.bytes())
                    .map(|(&g, kind)| {
                        best_of_kind(&glyphs[g], kind, mass_weight(r, region))
                            .1
                            .max(1e-6)
                            .ln()
                    })
                    .sum();
                // Mean log-probability, with a bonus per glyph so that longer readings are
                // not beaten by a confident substring; unused glyphs cost.
                let unused = (kept.len() - n) as f32;
                let mean = log / n as f32;
                let score = mean + 0.08 * n as f32 - 0.25 * unused;
                let score = score + prior(r, region, fmt);
                // For an unknown country a format is a guess, and the US formats are only the
                // commonest serials: they may not turn glyphs clearly seen as one symbol into
                // another (a US `4141119` into a Czech `4T41119`, a vanity `2CZ3587` into a
                // Texan `ZCZ3587`).
                let changed = changed_glyphs(glyphs, &window, fmt);
                let score = if region == Region::Auto || r == Region::Us {
                    score - CHANGED_COST * changed as f32
                } else {
                    score
                };
                // Marks between groups back a format that reads the glyphs as they are seen,
                // not one that makes an `X` a `1` (`VW4X4WP` is no LLNNNLL for the seal
                // between its groups).
                let score = if changed == 0 {
                    score + mark_score(marks, &window, fmt)
                } else {
                    score
                };
                if best.as_ref().is_none_or(|b| score > b.0) {
                    best = Some((score, fmt, window, r));
                }
            }
        }
    }
    let (_, fmt, used, r) = best?;
    // Read for an unknown country, free text is read again as American (its symbol lean and
    // lengths): what no region's format claims is likeliest a US plate (a vanity plate,
    // another state's serial).
    if region == Region::Auto && fmt.contains('A') {
        let mut d = decode_marked(glyphs, marks, Region::Us)?;
        if d.format.is_empty() {
            d.region = Region::Auto;
        }
        return Some(d);
    }
    let kinds = in_context(glyphs, &used, fmt);
    let mut text = String::new();
    let mut probs = Vec::new();
    let mut guesses = Vec::new();
    for (&g, kind) in used.iter().zip(kinds) {
        let (class, p) = best_of_kind(&glyphs[g], kind, mass_weight(r, region));
        text.push(SYMBOLS[class] as char);
        probs.push(p);
        guesses.push(ranked(&glyphs[g], kind));
    }
    // Brazil's formats are the law ([`mass_weight`]): what they force is told apart here.
    let forced = if r == Region::Br {
        forced_glyphs(glyphs, &used, &text)
    } else {
        0
    };
    let confidence = (probs.iter().map(|p| p.max(1e-6).ln()).sum::<f32>() / probs.len() as f32)
        .exp()
        * FORCED_COST.powi(forced as i32);
    let alternatives = alternatives(&text, &probs, &guesses, 4);
    // The region of the format read; free text, or (for `Auto`) a format several regions
    // share, tells nothing.
    let shared = regions
        .iter()
        .filter(|&&o| formats(o).contains(&fmt))
        .count()
        > 1;
    let region = if fmt.contains('A') || shared {
        region
    } else {
        r
    };
    Some(Decoded {
        text,
        confidence,
        glyphs: used,
        guesses,
        alternatives,
        region,
        format: if fmt.contains('A') {
            String::new()
        } else {
            fmt.bytes().map(|b| kind(b) as char).collect()
        },
    })
}

/// What the marks between the glyphs of a reading in format `fmt` (a run of the glyphs at
/// `used`) make of it ([`MARK_WEIGHT`]); free text takes no side.
fn mark_score(marks: &[bool], used: &[usize], fmt: &str) -> f32 {
    if fmt.contains('A') {
        return 0.0;
    }
    used.windows(2)
        .zip(fmt.as_bytes().windows(2))
        .filter(|(g, _)| g[1] == g[0] + 1 && marks.get(g[0]).copied().unwrap_or(false))
        .map(|(_, k)| {
            if kind(k[0]) != kind(k[1]) {
                MARK_WEIGHT
            } else {
                -MARK_WEIGHT
            }
        })
        .sum()
}

/// How many glyphs of a reading the format forced to be what they clearly are not: the
/// classifier's likeliest symbol is of the other kind, at [`FORCED_CLEAR`] or more, and the
/// symbol read is none of its look-alikes (a `Y` read as a `1`, an `R` as an `8`). A format
/// resolves look-alikes; forcing a clear glyph into another symbol is reading a word (a shop's
/// sign, a dealer's name) as a plate. Only Brazil's formats force glyphs this far: elsewhere
/// such a glyph costs the format reading more than free text ([`mass_weight`]).
fn forced_glyphs(glyphs: &[Probs], used: &[usize], text: &str) -> usize {
    used.iter()
        .zip(text.bytes())
        .filter(|&(&g, read)| {
            let c = likeliest(&glyphs[g]);
            let seen = SYMBOLS[c];
            seen.is_ascii_digit() != read.is_ascii_digit()
                && glyphs[g][c] >= FORCED_CLEAR
                && !look_alikes(c).any(|a| SYMBOLS[a] == read)
        })
        .count()
}

/// How many glyphs of a reading in format `fmt` (a run of `glyphs` at `used`) the format
/// changes into a symbol of the other kind though the classifier saw them clearly as their
/// own ([`CHANGED_CLEAR`]): `2` made `Z`, `1` made `T`, `A` made `4`. `0` made `O` and `1`
/// made `I` (and back), one shape in many plate fonts (Brazil's, Europe's), do not count.
fn changed_glyphs(glyphs: &[Probs], used: &[usize], fmt: &str) -> usize {
    used.iter()
        .zip(fmt.bytes())
        .filter(|&(&g, kind)| {
            let c = likeliest(&glyphs[g]);
            let twin = |a: u8, b: u8| {
                matches!(
                    (a, b),
                    (b'0', b'O') | (b'O', b'0') | (b'1', b'I') | (b'I', b'1')
                )
            };
            !allowed(kind, c)
                && glyphs[g][c] >= CHANGED_CLEAR
                && !twin(SYMBOLS[c], SYMBOLS[best_of_kind(&glyphs[g], kind, 1.0).0])
        })
        .count()
}

/// A glyph read this surely is clearly seen ([`changed_glyphs`]) ...
const CHANGED_CLEAR: f32 = 0.8;
/// ... and each one a format changes costs its reading this much (for an unknown country, and
/// in the US).
const CHANGED_COST: f32 = 0.5;

/// A glyph read this surely as a symbol of the other kind counts as forced ([`forced_glyphs`]).
const FORCED_CLEAR: f32 = 0.5;
/// What each forced glyph multiplies a reading's confidence by.
const FORCED_COST: f32 = 0.6;

/// The class of a glyph's likeliest symbol ("not a character" aside).
pub(super) fn likeliest(p: &Probs) -> usize {
    (0..SYMBOLS.len())
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .unwrap_or(0)
}

/// The kind each position of a reading takes. Where the format leaves it free, a glyph read
/// as one of a look-alike pair (`1`/`I`, `8`/`B`, `5`/`S` ..., not `0`/`O`) whose other half is
/// also fairly likely takes the kind its two nearest neighbours are sure of: plates group
/// their letters and their digits, so a bar between digits is a `1`.
fn in_context(glyphs: &[Probs], used: &[usize], fmt: &str) -> Vec<u8> {
    let top = |g: usize| likeliest(&glyphs[g]);
    let kind_of = |c: usize| {
        if SYMBOLS[c].is_ascii_digit() {
            b'N'
        } else {
            b'L'
        }
    };
    let sure_kind = |i: usize| {
        let c = top(used[i]);
        (glyphs[used[i]][c] > CONTEXT_SURE).then(|| kind_of(c))
    };
    let n = used.len();
    fmt.bytes()
        .enumerate()
        .map(|(i, kind)| {
            if kind != b'A' || n < 3 {
                return kind;
            }
            let g = used[i];
            let c = top(g);
            // Vanity plates spell words with a `0` for an `O`, and several states print the
            // two alike: their pair is left to the classifier.
            if b"0ODQ".contains(&SYMBOLS[c]) {
                return kind;
            }
            let own = kind_of(c);
            let (a, b) = match i {
                0 => (1, 2),
                _ if i == n - 1 => (n - 2, n - 3),
                _ => (i - 1, i + 1),
            };
            let other = if own == b'N' { b'L' } else { b'N' };
            let alike = look_alikes(c).map(|k| glyphs[g][k]).fold(0.0, f32::max);
            if sure_kind(a) == Some(other)
                && sure_kind(b) == Some(other)
                && alike >= CONTEXT_ALIKE * glyphs[g][c]
            {
                other
            } else {
                kind
            }
        })
        .collect()
}

/// A neighbour whose likeliest symbol is this likely tells the kind of its context.
const CONTEXT_SURE: f32 = 0.8;
/// A look-alike this likely relative to a glyph's likeliest symbol may replace it in context.
const CONTEXT_ALIKE: f32 = 0.2;

/// Letters and digits that look alike on plates: when a format wants the other kind, a glyph
/// read as one lends part of its probability to its look-alikes.
const LOOK_ALIKES: &[(u8, &[u8])] = &[
    (b'0', b"ODQ"),
    (b'1', b"ILTJ"),
    (b'2', b"Z"),
    (b'4', b"A"),
    (b'5', b"S"),
    (b'6', b"G"),
    (b'7', b"TZ"),
    (b'8', b"B"),
    (b'O', b"0"),
    (b'D', b"0"),
    (b'Q', b"0"),
    (b'I', b"1"),
    (b'L', b"1"),
    (b'T', b"17"),
    (b'J', b"1"),
    (b'Z', b"27"),
    (b'A', b"4"),
    (b'S', b"5"),
    (b'G', b"6"),
    (b'B', b"8"),
];
/// Share of a look-alike's probability lent.
const LOOK_ALIKE_SHARE: f32 = 0.5;

/// Probability of class `c` for a position of `kind`: its own, plus a share of its look-alikes
/// of the other kind when the format fixes the kind.
fn kind_prob(p: &Probs, kind: u8, c: usize) -> f32 {
    let own = p[c];
    if kind == b'A' {
        return own;
    }
    let lent: f32 = look_alikes(c).map(|i| p[i]).sum();
    own + LOOK_ALIKE_SHARE * lent
}

/// The classes that look like class `c` and are of the other kind.
fn look_alikes(c: usize) -> impl Iterator<Item = usize> {
    LOOK_ALIKES
        .iter()
        .find(move |(s, _)| *s == SYMBOLS[c])
        .into_iter()
        .flat_map(|(_, alikes)| alikes.iter())
        .filter_map(|a| SYMBOLS.iter().position(|s| s == a))
}

/// How much a symbol of the kind a format of region `r` wants loses when the glyph looked like
/// the other kind, reading for region `asked`: the kind's probability mass to this power.
/// Brazil's formats are the law there (any glyph at a letter position is a letter, so the
/// format outweighs the classifier); read for an unknown country they are one guess among
/// others (at 0.1 they would force a European `RK 755 AJ` into `RKZ5541`), though Brazil's
/// font still makes many a `1` look like an `I`. US and European formats are only the common
/// ones, so a glyph read clearly as the other kind costs the format reading much more. The US
/// formats listed cover fewest plates (DC's LLNNNN and the NNNNLL of several states were
/// forced into LLLNNN or NNNLLL at 0.5).
fn mass_weight(r: Region, asked: Region) -> f32 {
    match r {
        Region::Br if asked == Region::Auto => 0.3,
        Region::Br => 0.1,
        Region::Us => 0.6,
        _ => 0.5,
    }
}

/// The most likely symbol of a kind, and its confidence: its share of the kind's probability,
/// lowered (to the power `weight`, see [`mass_weight`]) when the glyph looked like the other
/// kind.
fn best_of_kind(p: &Probs, kind: u8, weight: f32) -> (usize, f32) {
    let mass: f32 = (0..SYMBOLS.len())
        .filter(|&c| allowed(kind, c))
        .map(|c| p[c])
        .sum();
    (0..SYMBOLS.len())
        .filter(|&c| allowed(kind, c))
        .map(|c| (c, kind_prob(p, kind, c)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, pc)| {
            let share = (pc / mass.max(1e-9)).min(1.0);
            (c, share * mass.max(1e-9).powf(weight))
        })
        .unwrap_or((0, 0.0))
}

fn ranked(p: &Probs, kind: u8) -> Vec<(char, f32)> {
    let mut v: Vec<(char, f32)> = (0..SYMBOLS.len())
        .filter(|&c| allowed(kind, c))
        .map(|c| (SYMBOLS[c] as char, kind_prob(p, kind, c)))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(3);
    v
}

/// The best texts that differ from `text` in one glyph's second choice.
fn alternatives(
    text: &str,
    probs: &[f32],
    guesses: &[Vec<(char, f32)>],
    n: usize,
) -> Vec<(String, f32)> {
    let base: f32 = probs.iter().map(|p| p.max(1e-6).ln()).sum();
    let len = probs.len() as f32;
    let mut out: Vec<(String, f32)> = guesses
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let &(c, p) = g.get(1)?;
            let mut t: Vec<char> = text.chars().collect();
            t[i] = c;
            let log = base - probs[i].max(1e-6).ln() + p.max(1e-6).ln();
            Some((t.into_iter().collect(), (log / len).exp()))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::classifier::class_of;

    /// A glyph that is `a` with probability `pa` and `b` with the rest.
    fn glyph(a: char, pa: f32, b: char) -> Probs {
        let mut p = [0.0; CLASSES];
        p[class_of(a).unwrap_or(NOISE)] = pa;
        p[class_of(b).unwrap_or(NOISE)] += 1.0 - pa;
        p
    }

    fn sure(c: char) -> Probs {
        glyph(c, 1.0, c)
    }

    #[test]
    fn brazil_format_resolves_confusions() {
        // "AYO9034" with the third glyph read as 0 (more likely) or O, and the last as A or 4:
        // both Brazilian formats want a letter first and a digit last.
        let g = [
            sure('A'),
            sure('Y'),
            glyph('0', 0.6, 'O'),
            sure('9'),
            sure('0'),
            sure('3'),
            glyph('A', 0.7, '4'),
        ];
        let d = decode(&g, Region::Br).unwrap();
        assert_eq!(d.text, "AYO9034");
        assert_eq!(d.region, Region::Br);
        assert!(d.confidence > 0.5 && d.confidence < 1.0, "{}", d.confidence);
        // Free text (no US format has four glyphs) keeps the classifier's choice.
        assert_eq!(decode(&g[..4], Region::Us).unwrap().text, "AY09");
    }

    #[test]
    fn a_word_forced_into_brazils_format_is_no_sure_plate() {
        // A dealer's "CLEYSOM" has seven glyphs like a plate, but its Y and M are no digits'
        // look-alikes: forced into LLLNNNN it is a poor reading, not a sure "CLE1507".
        let word = |second: char| {
            [
                sure('C'),
                sure('L'),
                sure('E'),
                glyph('Y', 0.8, second),
                glyph('S', 0.8, '5'),
                glyph('O', 0.8, '0'),
                glyph('M', 0.8, '7'),
            ]
        };
        let d = decode(&word('1'), Region::Br).unwrap();
        assert_eq!(d.text, "CLE1507");
        assert!(d.confidence < 0.5, "{}", d.confidence);
        // A plate whose S, O and a Z the format makes digits (their look-alikes) stays sure.
        let plate = [
            sure('C'),
            sure('L'),
            sure('E'),
            glyph('Z', 0.8, '2'),
            glyph('S', 0.8, '5'),
            glyph('O', 0.8, '0'),
            glyph('T', 0.8, '7'),
        ];
        let d = decode(&plate, Region::Br).unwrap();
        assert_eq!(d.text, "CLE2507");
        assert!(d.confidence > 0.5, "{}", d.confidence);
    }

    #[test]
    fn a_mark_between_groups_backs_the_format_whose_kind_changes_there() {
        // Brazil's `ODJ·1599` in its font, where `O` is `0` and `1` is `I` (and the `D` is
        // nearly a `0`): for an unknown country California's NLLLNNN (`0DJI599`) reads it
        // better than Brazil's LLLNNNN.
        let mut g: Vec<Probs> = "ODJ1599".chars().map(sure).collect();
        g[0] = glyph('0', 0.87, 'O');
        g[1] = glyph('0', 0.56, 'D');
        g[3] = glyph('I', 0.85, '1');
        assert_eq!(decode(&g, Region::Auto).unwrap().text, "0DJI599");
        // The dot after the third glyph is where LLLNNNN turns to digits.
        let mut marks = [false; 6];
        marks[2] = true;
        assert_eq!(
            decode_marked(&g, &marks, Region::Auto).unwrap().text,
            "ODJ1599"
        );
        // A mark where a format keeps its kind counts against it; free text takes no side.
        assert!(mark_score(&marks, &[0, 1, 2, 3, 4, 5, 6], "NLLLNNN") < 0.0);
        assert!(mark_score(&marks, &[0, 1, 2, 3, 4, 5, 6], "AAAAAAA") == 0.0);
        // Only marks between glyphs the reading uses side by side count.
        assert!(mark_score(&marks, &[0, 1, 3, 4, 5, 6], "LLNNNN") == 0.0);
        // A mark does not make a format of a glyph clearly seen as another kind: the seal
        // between `VW 4X4 WP`'s groups leaves its `X` an `X` (Italy's LLNNNLL would make it
        // a `1`).
        let mut g: Vec<Probs> = "VW4X4WP".chars().map(sure).collect();
        g[3] = glyph('X', 0.999, '1');
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "VW4X4WP");
        let mut marks = [false; 6];
        marks[4] = true;
        assert_eq!(
            decode_marked(&g, &marks, Region::Eu).unwrap().text,
            "VW4X4WP"
        );
    }

    #[test]
    fn an_unknown_country_weighs_europes_rarer_formats_less() {
        // DC's `BR1932` with its last glyph read as the classifier read it (`2` 0.73, `1`
        // 0.18, `Z` 0.02): Europe's LLNNNL (Italy's old plates, among others) makes it a `Z`
        // when the plate is known to be European, not when the country is unknown.
        let mut g: Vec<Probs> = "BR1932".chars().map(sure).collect();
        g[5] = glyph('2', 0.73, '1');
        g[5][class_of('1').unwrap()] = 0.18;
        g[5][class_of('Z').unwrap()] = 0.02;
        g[5][NOISE] = 0.07;
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "BR193Z");
        assert_eq!(decode(&g, Region::Auto).unwrap().text, "BR1932");
    }

    #[test]
    fn czech_plates_have_a_regions_letter_second() {
        // `1B8 0338` with its `B` as much an `8`: Czechia's format makes it South Moravia's B.
        let mut g: Vec<Probs> = "1B80338".chars().map(sure).collect();
        g[1] = glyph('8', 0.6, 'B');
        let d = decode(&g, Region::Eu).unwrap();
        assert_eq!((d.text.as_str(), d.format.as_str()), ("1B80338", "NLNNNNN"));
        // A `0` that might be a `Q` stays a digit: no region's letter is a `Q`.
        let mut g: Vec<Probs> = "4069160".chars().map(sure).collect();
        g[1] = glyph('0', 0.6, 'Q');
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "4069160");
        assert_eq!(decode(&g, Region::Auto).unwrap().text, "4069160");
    }

    #[test]
    fn spanish_plates_end_in_consonants() {
        let read = |s: &str| {
            let g: Vec<Probs> = s.chars().map(sure).collect();
            decode(&g, Region::Eu).unwrap().format
        };
        assert_eq!(read("1234BCD"), "NNNNLLL");
        // Vowels are not Spanish: `1234ABE` is free text.
        assert_eq!(read("1234ABE"), "");
    }

    #[test]
    fn an_unknown_country_tries_every_regions_formats() {
        // An Italian "RK 755 AJ" read clearly: Brazil's LLLNNNN would force it into
        // "RKZ5541"; Europe's LLNNNLL fits as read.
        let g: Vec<Probs> = "RK755AJ".chars().map(sure).collect();
        let d = decode(&g, Region::Auto).unwrap();
        assert_eq!((d.text.as_str(), d.region), ("RK755AJ", Region::Eu));
        // A Brazilian "OUP 1442" whose 1 looks more like an I (Brazil's font) is still read
        // in the national format, which no other region has alone (LLLNNNN is Polish and
        // American too, so the region stays unknown).
        let mut g: Vec<Probs> = "OUP1442".chars().map(sure).collect();
        g[3] = glyph('I', 0.8, '1');
        let d = decode(&g, Region::Auto).unwrap();
        assert_eq!((d.text.as_str(), d.region), ("OUP1442", Region::Auto));
        // Mercosur's LLLNLNN is Brazil's alone.
        let g: Vec<Probs> = "BRA2E19".chars().map(sure).collect();
        let d = decode(&g, Region::Auto).unwrap();
        assert_eq!((d.text.as_str(), d.region), ("BRA2E19", Region::Br));
        // A Californian plate with a bolt read as a doubtful `1` after it is read as it is,
        // not as a Polish LLLNNNN of its last six glyphs and the bolt (NLLLNNN is Belgian
        // too, so the region stays unknown).
        let mut g: Vec<Probs> = "4EEU3871".chars().map(sure).collect();
        g[7] = glyph('1', 0.6, 'I');
        let d = decode(&g, Region::Auto).unwrap();
        assert_eq!((d.text.as_str(), d.region), ("4EEU387", Region::Auto));
    }

    #[test]
    fn an_unknown_countrys_format_does_not_change_clear_glyphs() {
        // A US all-digit serial whose `1` and `2` were read fairly surely: Czechia's NLNNNNN
        // (a common European format) would make them `T` and `Z`.
        let mut g: Vec<Probs> = "4123119".chars().map(sure).collect();
        g[1] = glyph('1', 0.85, 'T');
        g[2] = glyph('2', 0.85, 'Z');
        assert_eq!(decode(&g, Region::Auto).unwrap().text, "4123119");
        // Read for Europe, the format is the law it was.
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "4T23119");
        // A Czech plate's `B` read as an unsure `8` is still a letter.
        let mut g: Vec<Probs> = "1B80338".chars().map(sure).collect();
        g[1] = glyph('8', 0.6, 'B');
        assert_eq!(decode(&g, Region::Auto).unwrap().text, "1B80338");
    }

    #[test]
    fn noise_glyphs_are_dropped_and_extra_glyphs_cost() {
        let mut g: Vec<Probs> = "M5XSX".chars().map(sure).collect();
        g.insert(1, glyph('#', 0.9, 'O')); // a sticker between M and 5
        let d = decode(&g, Region::Eu).unwrap();
        assert_eq!(d.text, "M5XSX");
        assert_eq!(d.glyphs, [0, 2, 3, 4, 5]);
        assert_eq!(d.guesses[0][0], ('M', 1.0));
    }

    #[test]
    fn an_unsure_glyph_between_groups_is_passed_over() {
        // "KTA 001" with an emblem between the groups that the classifier half takes for an
        // `M`: the plate reads without it (LLLNNN), which costs as much as an unused glyph
        // at an end.
        let mut g: Vec<Probs> = "KTA001".chars().map(sure).collect();
        g.insert(3, glyph('M', 0.6, '#'));
        let d = decode(&g, Region::Us).unwrap();
        assert_eq!(d.text, "KTA001");
        assert_eq!(d.glyphs, [0, 1, 2, 4, 5, 6]);
        // A glyph the classifier is sure of is never passed over.
        g[3] = glyph('M', 0.8, '#');
        assert!(decode(&g, Region::Us).unwrap().glyphs.contains(&3));
    }

    #[test]
    fn a_clear_digit_is_not_forced_into_a_us_format() {
        // Washington DC's "BR 1932" (LLNNNN, not a listed format): LLLNNN would read the
        // clear `1` as a `T`.
        let mut g: Vec<Probs> = "BR1932".chars().map(sure).collect();
        g[2] = glyph('1', 0.97, 'T');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "BR1932");
        // A glyph the classifier is unsure of still takes the format's kind.
        g[2] = glyph('1', 0.6, 'T');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "BRT932");
        // Idaho's "2CZ3587" with its `2` read fairly surely is not the LLLNNNN `ZCZ3587`.
        let mut g: Vec<Probs> = "2CZ3587".chars().map(sure).collect();
        g[0] = glyph('2', 0.85, 'Z');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "2CZ3587");
    }

    #[test]
    fn an_even_call_on_a_us_plate_takes_the_commoner_us_symbol() {
        // Free text (a vanity plate's length, no format): the classifier finds the third glyph
        // a little likelier an `O`, and the sixth an `I`; `0` and `1` are much commoner on US
        // plates. Europe's free text keeps the classifier's choice.
        let mut g: Vec<Probs> = "7X02K1".chars().map(sure).collect();
        g[2] = glyph('O', 0.55, '0');
        g[5] = glyph('I', 0.55, '1');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "7X02K1");
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "7XO2KI");
        // For an unknown country, free text is read as on a US plate; its region stays unknown.
        let d = decode(&g, Region::Auto).unwrap();
        assert_eq!((d.text.as_str(), d.region), ("7X02K1", Region::Auto));
        // A clear reading stays: the lean is a tie-breaker, not a rule.
        g[2] = glyph('O', 0.9, '0');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "7XO2K1");
        // The symbols keep their total, "not a character" its share.
        let before = glyph('Q', 0.6, '#');
        let leaning = lean_to_us_symbols(&before);
        assert!((leaning[..NOISE].iter().sum::<f32>() - 0.6).abs() < 1e-6);
        assert_eq!(leaning[NOISE], before[NOISE]);
    }

    #[test]
    fn a_bar_between_digits_is_a_one() {
        // New Hampshire's plain `1` reads as an `I` more often than not; among digits it is a
        // `1`, among letters an `I`.
        let mut g: Vec<Probs> = "2470410".chars().map(sure).collect();
        g[5] = glyph('I', 0.6, '1');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "2470410");
        let mut g: Vec<Probs> = "PLIMTH".chars().map(sure).collect();
        g[2] = glyph('1', 0.6, 'I');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "PLIMTH");
        // A vanity word's `0` stays a `0`.
        let mut g: Vec<Probs> = "BL0GGER".chars().map(sure).collect();
        g[2] = glyph('0', 0.7, 'O');
        assert_eq!(decode(&g, Region::Us).unwrap().text, "BL0GGER");
    }

    #[test]
    fn a_glyph_of_either_kind_takes_the_commoner_european_format() {
        // France's "BA 302 OZ" with the `O` read more like a `0`: LLNNNNL (Croatia) fits the
        // classifier better, the far commoner LLNNNLL wins.
        let mut g: Vec<Probs> = "BA302OZ".chars().map(sure).collect();
        g[5] = glyph('0', 0.78, 'O');
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "BA302OZ");
        // A clear letter there is a rarer format's, not forced into the common one.
        let mut g: Vec<Probs> = "ZG1234A".chars().map(sure).collect();
        g[5] = glyph('4', 0.95, 'A');
        assert_eq!(decode(&g, Region::Eu).unwrap().text, "ZG1234A");
    }

    #[test]
    fn too_few_glyphs_decode_to_nothing() {
        let g: Vec<Probs> = "AB1".chars().map(sure).collect();
        assert_eq!(decode(&g, Region::Eu), None);
        assert_eq!(decode(&[], Region::Auto), None);
    }

    #[test]
    fn alternatives_swap_the_least_sure_glyph() {
        let g = [
            sure('K'),
            sure('A'),
            glyph('8', 0.55, 'B'),
            sure('1'),
            sure('2'),
        ];
        let d = decode(&g, Region::Us).unwrap();
        assert_eq!(d.text, "KA812");
        assert_eq!(d.alternatives[0].0, "KAB12");
    }
}
