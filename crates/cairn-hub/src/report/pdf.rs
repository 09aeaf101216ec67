//! A report as PDF, with pdf-writer and the built-in Helvetica (no font
//! files): the same sections as the HTML, page after page, and the
//! latency histogram drawn as bars. Deterministic bytes for a report.

use super::Report;
use super::text::sections;
use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 50.0;
const LINE: f32 = 13.0;
const FONT: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// What one page shows.
enum Item {
    Title(String),
    Row(String, String),
    Bars(Vec<u64>),
}

/// Text as the built-in fonts' encoding takes it: Latin-1, anything else `?`.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|ch| u8::try_from(u32::from(ch)).unwrap_or(b'?'))
        .collect()
}

fn items(report: &Report) -> Vec<Item> {
    let mut items = vec![Item::Title("Cairn compliance report".into())];
    for section in sections(report) {
        let chart = section.title.starts_with("Reconciliation");
        items.push(Item::Title(section.title));
        for (label, value) in section.rows {
            // Long values (an aircraft record's data) wrap at 95 characters.
            let mut rest: &str = &value;
            let mut label = label;
            while rest.chars().count() > 95 {
                let cut = rest.char_indices().nth(95).map_or(rest.len(), |(at, _)| at);
                items.push(Item::Row(
                    std::mem::take(&mut label),
                    rest[..cut].to_string(),
                ));
                rest = &rest[cut..];
            }
            items.push(Item::Row(label, rest.to_string()));
        }
        if chart {
            items.push(Item::Bars(
                report
                    .latency
                    .buckets
                    .iter()
                    .map(|(_, count)| *count)
                    .collect(),
            ));
        }
    }
    items
}

/// The report as PDF bytes.
pub fn render(report: &Report) -> Vec<u8> {
    let mut pages: Vec<Content> = vec![Content::new()];
    let mut y = PAGE.1 - MARGIN;
    for item in items(report) {
        let needed = match item {
            Item::Bars(_) => 110.0,
            Item::Title(_) => 2.0 * LINE,
            Item::Row(..) => LINE,
        };
        if y - needed < MARGIN {
            pages.push(Content::new());
            y = PAGE.1 - MARGIN;
        }
        let content = pages.last_mut().expect("one page at least");
        match item {
            Item::Title(title) => {
                y -= LINE;
                content.begin_text();
                content.set_font(BOLD, 12.0);
                content.next_line(MARGIN, y);
                content.show(Str(&latin1(&title)));
                content.end_text();
                y -= LINE;
            }
            Item::Row(label, value) => {
                content.begin_text();
                content.set_font(FONT, 9.0);
                content.next_line(MARGIN, y);
                content.show(Str(&latin1(&label)));
                content.next_line(170.0, 0.0);
                content.show(Str(&latin1(&value)));
                content.end_text();
                y -= LINE;
            }
            Item::Bars(counts) => {
                let top = counts.iter().copied().max().unwrap_or(0).max(1) as f32;
                let width = (PAGE.0 - 2.0 * MARGIN) / counts.len().max(1) as f32;
                content.set_fill_rgb(0.23, 0.43, 0.65);
                for (index, count) in counts.iter().enumerate() {
                    let height = *count as f32 / top * 90.0;
                    content.rect(
                        MARGIN + index as f32 * width,
                        y - 100.0,
                        width - 4.0,
                        height,
                    );
                }
                content.fill_nonzero();
                content.set_fill_rgb(0.0, 0.0, 0.0);
                y -= 110.0;
            }
        }
    }
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let (font, bold) = (Ref::new(3), Ref::new(4));
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|index| Ref::new(5 + 2 * index as i32))
        .collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold"));
    for (page_id, content) in page_ids.iter().zip(pages) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(FONT, font);
        fonts.pair(BOLD, bold);
        drop(fonts);
        drop(resources);
        drop(page);
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}
