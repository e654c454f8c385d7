//! A text console on the boot framebuffer, drawn with the `noto-sans-mono-bitmap` font.
//!
//! The font crate gives pre-rendered anti-aliased glyphs (no font file, no rasteriser). Text wraps at the
//! right edge and scrolls by moving the pixel rows up. Characters without a glyph show as `?`. The console is
//! absent (every call a no-op) when the bootloader found no framebuffer.

use crate::sync::IrqMutex;
use bootloader_api::info::{FrameBuffer, FrameBufferInfo, PixelFormat};
use core::fmt::{self, Write};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

const WEIGHT: FontWeight = FontWeight::Regular;
const HEIGHT: RasterHeight = RasterHeight::Size16;
const LINE_SPACING: usize = 2;
const BORDER: usize = 4;

struct TextScreen {
    buffer: &'static mut [u8],
    info: FrameBufferInfo,
    column: usize,
    row: usize,
    columns: usize,
    rows: usize,
}

static SCREEN: IrqMutex<Option<TextScreen>> = IrqMutex::new(None);

const fn char_width() -> usize {
    get_raster_width(WEIGHT, HEIGHT)
}

const fn line_height() -> usize {
    HEIGHT.val() + LINE_SPACING
}

/// Takes over the framebuffer and clears it.
pub fn init(framebuffer: &'static mut FrameBuffer) {
    let info = framebuffer.info();
    let buffer = framebuffer.buffer_mut();
    buffer.fill(0);
    let columns = info.width.saturating_sub(2 * BORDER) / char_width();
    let rows = info.height.saturating_sub(2 * BORDER) / line_height();
    if columns == 0 || rows == 0 {
        return;
    }
    *SCREEN.lock() = Some(TextScreen { buffer, info, column: 0, row: 0, columns, rows });
}

/// Writes formatted text (no-op without a framebuffer).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(screen) = SCREEN.lock().as_mut() {
        let _ = screen.write_fmt(args);
    }
}

/// Writes formatted text only if nobody holds the screen (panic path).
pub fn try_write_fmt(args: fmt::Arguments<'_>) {
    if let Some(mut guard) = SCREEN.try_lock()
        && let Some(screen) = guard.as_mut()
    {
        let _ = screen.write_fmt(args);
    }
}

/// Shows raw input bytes as the line editor echoes them (printable ASCII and backspace).
pub fn echo(bytes: &[u8]) {
    if let Some(screen) = SCREEN.lock().as_mut() {
        for &b in bytes {
            screen.put(char::from(b));
        }
    }
}

impl TextScreen {
    fn put(&mut self, c: char) {
        match c {
            '\n' => self.newline(),
            '\r' => self.column = 0,
            '\u{8}' => {
                if self.column > 0 {
                    self.column -= 1;
                    self.draw(' ');
                }
            }
            c => {
                if self.column >= self.columns {
                    self.newline();
                }
                self.draw(c);
                self.column += 1;
            }
        }
    }

    fn newline(&mut self) {
        self.column = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
        } else {
            self.scroll();
        }
    }

    fn row_bytes(&self) -> usize {
        self.info.stride * self.info.bytes_per_pixel
    }

    fn scroll(&mut self) {
        let line = line_height() * self.row_bytes();
        let top = BORDER * self.row_bytes();
        let text_end = top + self.rows * line;
        self.buffer.copy_within(top + line..text_end, top);
        self.buffer[text_end - line..text_end].fill(0);
    }

    fn draw(&mut self, c: char) {
        let raster = get_raster(c, WEIGHT, HEIGHT)
            .or_else(|| get_raster('?', WEIGHT, HEIGHT))
            .unwrap_or_else(|| unreachable!("'?' is in the basic Latin range the font includes"));
        let x0 = BORDER + self.column * char_width();
        let y0 = BORDER + self.row * line_height();
        for (dy, row) in raster.rows().enumerate() {
            for (dx, intensity) in row.iter().enumerate() {
                self.pixel(x0 + dx, y0 + dy, *intensity);
            }
        }
    }

    fn pixel(&mut self, x: usize, y: usize, intensity: u8) {
        let bpp = self.info.bytes_per_pixel;
        let at = (y * self.info.stride + x) * bpp;
        let Some(px) = self.buffer.get_mut(at..at + bpp) else { return };
        match self.info.pixel_format {
            PixelFormat::Rgb | PixelFormat::Bgr => {
                px[..3].fill(intensity);
            }
            PixelFormat::U8 => px[0] = intensity,
            _ => px.fill(intensity),
        }
    }
}

impl Write for TextScreen {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.chars().for_each(|c| self.put(c));
        Ok(())
    }
}
