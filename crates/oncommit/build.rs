//! Renders oncommit's own migrations into `OUT_DIR`, where `migrate.rs` embeds them: each
//! line `-- include: current/NAME.sql` becomes that file (the one current definition of a
//! SQL function or trigger), and `{{QUEUE}}`, `{{PRIORITY}}`, `{{MAX_ATTEMPTS}}` become the
//! defaults of `src/defaults.rs`. See `migrations/README.md`.

use std::fs;
use std::path::Path;

#[allow(dead_code, unreachable_pub, reason = "the build script reads only the values")]
mod defaults {
    include!("src/defaults.rs");
}

fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rerun-if-changed=src/defaults.rs");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for db in ["postgres", "sqlite"] {
        let dir = Path::new("migrations").join(db);
        let target = Path::new(&out).join("migrations").join(db);
        fs::create_dir_all(&target).expect("OUT_DIR is writable");
        let mut files: Vec<_> = fs::read_dir(&dir).expect("migrations/ exists").flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
            let sql = fs::read_to_string(file).expect("a migration is UTF-8");
            let rendered = render(&dir, &sql).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            fs::write(target.join(file.file_name().expect("a file")), rendered).expect("OUT_DIR is writable");
        }
    }
}

/// The migration `sql` with its includes and defaults filled in.
fn render(dir: &Path, sql: &str) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    for line in sql.split_inclusive('\n') {
        match line.trim_end().strip_prefix("-- include: ") {
            Some(name) => {
                let body = fs::read_to_string(dir.join(name)).map_err(|e| format!("include {name}: {e}"))?;
                out.push_str(&body);
                println!("cargo::rerun-if-changed={}", dir.join(name).display());
            }
            None => out.push_str(line),
        }
    }
    let out = out
        .replace("{{QUEUE}}", defaults::QUEUE)
        .replace("{{PRIORITY}}", &defaults::PRIORITY.to_string())
        .replace("{{MAX_ATTEMPTS}}", &defaults::MAX_ATTEMPTS.to_string());
    match out.find("{{") {
        Some(at) => Err(format!("an unknown placeholder: {}", &out[at..out.len().min(at + 40)])),
        None => Ok(out),
    }
}
