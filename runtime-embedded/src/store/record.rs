//! Sealed records in NOR flash: a header, a payload, then a 32-byte seal (SHA-256 of header
//! and payload) written last. A record counts only if its seal matches what is in flash, so a
//! write or an erase cut by power loss, or a bit that rotted, leaves a record that is ignored,
//! never one that is half there.

use embedded_storage::nor_flash::NorFlash;
use pyrsia_core::digest::Hasher;

/// Records start and end on this boundary; it must be a multiple of the flash's `WRITE_SIZE`.
pub(crate) const ALIGN: u32 = 32;

/// Length of a seal.
pub(crate) const SEAL_LEN: u32 = 32;

/// Rounds `len` up to [`ALIGN`].
pub(crate) const fn align_up(len: u32) -> u32 {
    len.div_ceil(ALIGN) * ALIGN
}

/// Writes one record from `offset`, in any pieces, padding to [`ALIGN`] as flash needs.
pub(crate) struct RecordWriter {
    offset: u32,
    pending: [u8; ALIGN as usize],
    pending_len: usize,
    hasher: Hasher,
}

impl RecordWriter {
    /// A record starting at `offset` (aligned, erased).
    pub(crate) fn new(offset: u32) -> Self {
        RecordWriter {
            offset,
            pending: [0xFF; ALIGN as usize],
            pending_len: 0,
            hasher: Hasher::new(),
        }
    }

    /// Appends bytes to the record.
    pub(crate) fn write<F: NorFlash>(
        &mut self,
        flash: &mut F,
        mut bytes: &[u8],
    ) -> Result<(), F::Error> {
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            if self.pending_len == 0 && bytes.len() >= ALIGN as usize {
                let whole = bytes.len() - bytes.len() % ALIGN as usize;
                flash.write(self.offset, &bytes[..whole])?;
                self.offset += whole as u32;
                bytes = &bytes[whole..];
                continue;
            }
            let take = (ALIGN as usize - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len == ALIGN as usize {
                flash.write(self.offset, &self.pending)?;
                self.offset += ALIGN;
                self.pending = [0xFF; ALIGN as usize];
                self.pending_len = 0;
            }
        }
        Ok(())
    }

    /// Writes what is pending, then the seal: the record is valid from the seal's last byte.
    pub(crate) fn seal<F: NorFlash>(mut self, flash: &mut F) -> Result<u32, F::Error> {
        if self.pending_len > 0 {
            flash.write(self.offset, &self.pending)?;
            self.offset += ALIGN;
        }
        let seal = self.hasher.finish();
        flash.write(self.offset, seal.as_bytes())?;
        Ok(self.offset + SEAL_LEN)
    }
}

/// Whether the record at `offset` with `header` and `payload_len` payload bytes has a seal
/// matching its content. Reads the payload through `scratch`.
pub(crate) fn seal_holds<F: NorFlash>(
    flash: &mut F,
    offset: u32,
    header: &[u8],
    payload_len: u32,
    scratch: &mut [u8],
) -> Result<bool, F::Error> {
    let mut hasher = Hasher::new();
    hasher.update(header);
    let payload_start = offset + header.len() as u32;
    let mut done = 0;
    while done < payload_len {
        let take = (payload_len - done).min(scratch.len() as u32);
        flash.read(payload_start + done, &mut scratch[..take as usize])?;
        hasher.update(&scratch[..take as usize]);
        done += take;
    }
    let mut seal = [0u8; SEAL_LEN as usize];
    flash.read(payload_start + align_up(payload_len), &mut seal)?;
    Ok(hasher.finish().as_bytes() == &seal)
}
