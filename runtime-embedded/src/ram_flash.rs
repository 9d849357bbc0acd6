//! NOR flash semantics over plain memory: erase sets 4 KiB sectors to `0xFF`, a write may only
//! program erased bytes. For boards whose "flash" is RAM (qemu's mps2-an386 PSRAM) and for
//! host tests; a write over programmed bytes is an error, so a layout bug cannot hide.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Flash over a byte slice whose length is a multiple of [`RamFlash::SECTOR`].
pub struct RamFlash<'m> {
    memory: &'m mut [u8],
}

/// A refused flash operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RamFlashError {
    /// Offset or length not aligned to the operation's unit.
    NotAligned,
    /// Outside the memory.
    OutOfBounds,
    /// A write over bytes that are not erased.
    NotErased,
}

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            RamFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            RamFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            RamFlashError::NotErased => NorFlashErrorKind::Other,
        }
    }
}

impl<'m> RamFlash<'m> {
    /// Erase unit.
    pub const SECTOR: usize = 4096;

    /// Flash over `memory` (its content is kept: a board's flash survives a reset).
    pub fn new(memory: &'m mut [u8]) -> Self {
        let whole = memory.len() - memory.len() % Self::SECTOR;
        RamFlash {
            memory: &mut memory[..whole],
        }
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, RamFlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(RamFlashError::OutOfBounds)?;
        if end > self.memory.len() {
            return Err(RamFlashError::OutOfBounds);
        }
        Ok(start..end)
    }
}

impl ErrorType for RamFlash<'_> {
    type Error = RamFlashError;
}

impl ReadNorFlash for RamFlash<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.memory[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.memory.len()
    }
}

impl NorFlash for RamFlash<'_> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = Self::SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if !(from as usize).is_multiple_of(Self::SECTOR)
            || !(to as usize).is_multiple_of(Self::SECTOR)
            || to < from
        {
            return Err(RamFlashError::NotAligned);
        }
        let range = self.range(from, (to - from) as usize)?;
        self.memory[range].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !(offset as usize).is_multiple_of(Self::WRITE_SIZE)
            || !bytes.len().is_multiple_of(Self::WRITE_SIZE)
        {
            return Err(RamFlashError::NotAligned);
        }
        let range = self.range(offset, bytes.len())?;
        let target = &mut self.memory[range];
        if target.iter().any(|&b| b != 0xFF) {
            return Err(RamFlashError::NotErased);
        }
        target.copy_from_slice(bytes);
        Ok(())
    }
}
