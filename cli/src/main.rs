//! The windlass command-line tool (being built).

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: windlass URL");
        std::process::exit(2);
    };
    match windlass::get(&url).call().and_then(|r| r.text()) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("windlass: {e}");
            std::process::exit(1);
        }
    }
}
