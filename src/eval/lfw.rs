//! LFW's pairs format and layout (facenet's `lfw.py` read_pairs / get_paths).

use crate::data::{io_at, DataError};
use std::path::{Path, PathBuf};

/// One line of pairs.txt: `name i j` (same person) or `name1 i name2 j` (different people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub a: (String, u32),
    pub b: (String, u32),
    pub same: bool,
}

/// A parsed pairs file: the header's fold count and pairs per fold, and the pairs in file order.
#[derive(Debug, Clone)]
pub struct Pairs {
    pub folds: usize,
    pub per_fold: usize,
    pub pairs: Vec<Pair>,
}

/// A pairs file that cannot be used: the file, the line (0: the file as a whole) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {detail}", path.display())]
pub struct PairsError {
    pub path: PathBuf,
    pub line: usize,
    pub detail: String,
}

/// Parses LFW's pairs format. The header is `folds n` (or a single count, as in pairsDevTrain.txt);
/// blank lines are ignored; anything else is an error naming the file and line.
pub fn parse_pairs(text: &str, path: &Path) -> Result<Pairs, PairsError> {
    let err = |line: usize, detail: String| PairsError { path: path.to_path_buf(), line, detail };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (hline, header) = lines.next().ok_or_else(|| err(1, "empty pairs file".into()))?;
    let nums: Vec<usize> = header
        .split_whitespace()
        .map(|t| t.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| err(hline + 1, format!("header '{}' should be 'folds pairs-per-fold'", header.trim())))?;
    let (folds, per_fold) = match nums.as_slice() {
        [f, n] => (*f, *n),
        [n] => (1, *n),
        _ => return Err(err(hline + 1, format!("header '{}' should be 'folds pairs-per-fold'", header.trim()))),
    };
    let mut pairs = Vec::new();
    for (i, line) in lines {
        let t: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| s.parse::<u32>().map_err(|_| err(i + 1, format!("'{s}' is not an image number")));
        let pair = match t.as_slice() {
            [name, a, b] => Pair { a: (name.to_string(), num(a)?), b: (name.to_string(), num(b)?), same: true },
            [n1, a, n2, b] => Pair { a: (n1.to_string(), num(a)?), b: (n2.to_string(), num(b)?), same: false },
            _ => return Err(err(i + 1, format!("expected 'name i j' or 'name1 i name2 j', got '{}'", line.trim()))),
        };
        pairs.push(pair);
    }
    Ok(Pairs { folds, per_fold, pairs })
}

pub fn read_pairs(path: &Path) -> Result<Pairs, PairsError> {
    let text = std::fs::read_to_string(path).map_err(|e| PairsError { path: path.to_path_buf(), line: 0, detail: e.to_string() })?;
    parse_pairs(&text, path)
}

/// Image extensions tried, in order, for `name/name_%04d` (facenet tries jpg then png).
pub const EXTENSIONS: &[&str] = &["jpg", "png", "jpeg", "JPG", "PNG", "JPEG", "bmp", "webp"];

/// `lfw_dir/name/name_%04d.<ext>` with the first extension that exists.
pub fn image_path(lfw_dir: &Path, name: &str, number: u32) -> Option<PathBuf> {
    let stem = lfw_dir.join(name).join(format!("{name}_{number:04}"));
    EXTENSIONS.iter().map(|e| stem.with_extension(e)).find(|p| p.is_file())
}

/// The pairs whose two images exist, as indices into a list of unique image paths (each image listed
/// once however many pairs use it), plus how many pairs were skipped for a missing image and which.
pub struct Resolved {
    pub images: Vec<PathBuf>,
    /// `(index of a, index of b, same)`.
    pub pairs: Vec<(usize, usize, bool)>,
    pub skipped: Vec<String>,
}

pub fn resolve(lfw_dir: &Path, pairs: &[Pair]) -> Resolved {
    let mut images: Vec<PathBuf> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut out = Resolved { images: Vec::new(), pairs: Vec::new(), skipped: Vec::new() };
    for p in pairs {
        match (image_path(lfw_dir, &p.a.0, p.a.1), image_path(lfw_dir, &p.b.0, p.b.1)) {
            (Some(a), Some(b)) => {
                let mut id = |path: PathBuf| {
                    *index.entry(path.clone()).or_insert_with(|| {
                        images.push(path);
                        images.len() - 1
                    })
                };
                let (ia, ib) = (id(a), id(b));
                out.pairs.push((ia, ib, p.same));
            }
            _ => out.skipped.push(format!("{} {} / {} {}", p.a.0, p.a.1, p.b.0, p.b.1)),
        }
    }
    out.images = images;
    out
}

/// Copies an identity-per-folder tree (`person/any-name.ext`) into LFW's layout, `dst/person/person_%04d.ext`
/// numbered from 1 in sorted file order. Existing files in `dst` are never overwritten. Returns each
/// person with their image count.
pub fn make_layout(src: &Path, dst: &Path) -> Result<Vec<(String, u32)>, DataError> {
    let mut out = Vec::new();
    for (name, files) in crate::data::dataset::identity_folders(src)? {
        let dir = dst.join(&name);
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let mut n = 0;
        for f in files {
            let ext = f.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "jpg".into());
            n += 1;
            let to = dir.join(format!("{name}_{n:04}.{ext}"));
            if to.exists() {
                return Err(DataError::Invalid { path: to, detail: "already exists (facegpu never overwrites)".into() });
            }
            std::fs::copy(&f, &to).map_err(io_at(&to))?;
        }
        out.push((name, n));
    }
    Ok(out)
}

/// Writes a pairs file for a tree in LFW's layout: every same-person pair and as many different-person
/// pairs (cycling through the people and their images), split into `folds` folds of `n` matched then `n`
/// mismatched lines like LFW's own file. Returns `n`.
pub fn write_pairs(dir: &Path, out: &Path, folds: usize) -> Result<usize, DataError> {
    let mut people: Vec<(String, Vec<u32>)> = Vec::new();
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io_at(dir))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let nums: Vec<u32> = (1..10_000).take_while(|&n| image_path(dir, &name, n).is_some()).collect();
        if !nums.is_empty() {
            people.push((name, nums));
        }
    }
    if people.len() < 2 {
        return Err(DataError::Invalid { path: dir.to_path_buf(), detail: "pairs need at least two people with images".into() });
    }
    let mut same = Vec::new();
    for (name, nums) in &people {
        for i in 0..nums.len() {
            for j in i + 1..nums.len() {
                same.push(format!("{name}\t{}\t{}", nums[i], nums[j]));
            }
        }
    }
    let n = people.len();
    let mut diff = Vec::new();
    for k in 0..same.len() {
        let (a, round) = (k % n, k / n);
        let b = (a + 1 + round % (n - 1)) % n;
        let (pa, pb) = (&people[a], &people[b]);
        diff.push(format!("{}\t{}\t{}\t{}", pa.0, pa.1[round % pa.1.len()], pb.0, pb.1[(round + 1) % pb.1.len()]));
    }
    let folds = folds.max(1);
    let per_fold = same.len() / folds;
    if per_fold == 0 {
        let detail = format!("{} same-person pairs cannot fill {folds} folds", same.len());
        return Err(DataError::Invalid { path: dir.to_path_buf(), detail });
    }
    let mut text = format!("{folds}\t{per_fold}\n");
    for f in 0..folds {
        for l in same[f * per_fold..(f + 1) * per_fold].iter().chain(&diff[f * per_fold..(f + 1) * per_fold]) {
            text.push_str(l);
            text.push('\n');
        }
    }
    std::fs::write(out, text).map_err(io_at(out))?;
    Ok(per_fold)
}
