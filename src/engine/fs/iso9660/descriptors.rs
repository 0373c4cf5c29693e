//! Path tables and volume descriptors: the primary descriptor, the El Torito boot record and
//! the set terminator.

use super::*;

pub(super) fn path_table(tree: &Tree, view: usize, base: u32, big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for dir in &tree.order {
        let identifier: &[u8] = if *dir == 0 {
            &[0]
        } else {
            let parent = &tree.dirs[tree.dirs[*dir].parent];
            parent
                .children
                .iter()
                .find(|child| child.kind == Kind::Dir(*dir))
                .map(|child| child.identifier.as_slice())
                .unwrap_or(&[0])
        };
        let lba = tree.dirs[*dir].lba[view] - base;
        let parent = tree.dirs[tree.dirs[*dir].parent].number;
        out.push(identifier.len() as u8);
        out.push(0);
        if big_endian {
            out.extend_from_slice(&lba.to_be_bytes());
            out.extend_from_slice(&parent.to_be_bytes());
        } else {
            out.extend_from_slice(&lba.to_le_bytes());
            out.extend_from_slice(&parent.to_le_bytes());
        }
        out.extend_from_slice(identifier);
        if identifier.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

pub(super) fn padded_text(field: &mut [u8], text: &str) {
    field.fill(b' ');
    let bytes = text.as_bytes();
    let len = bytes.len().min(field.len());
    field[..len].copy_from_slice(&bytes[..len]);
}

pub(super) struct DescriptorFields<'a> {
    pub(super) volume: &'a Volume,
    pub(super) blocks: u32,
    pub(super) path_table_size: u32,
    pub(super) l_table: u32,
    pub(super) m_table: u32,
    pub(super) root_record: Vec<u8>,
}

pub(super) fn primary_descriptor(fields: &DescriptorFields) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK as usize];
    block[0] = 1;
    block[1..6].copy_from_slice(b"CD001");
    block[6] = 1;
    padded_text(&mut block[8..40], "");
    padded_text(&mut block[40..72], &fields.volume.volume_id);
    block[80..88].copy_from_slice(&both32(fields.blocks));
    block[120..124].copy_from_slice(&both16(1));
    block[124..128].copy_from_slice(&both16(1));
    block[128..132].copy_from_slice(&both16(BLOCK as u16));
    block[132..140].copy_from_slice(&both32(fields.path_table_size));
    block[140..144].copy_from_slice(&fields.l_table.to_le_bytes());
    block[148..152].copy_from_slice(&fields.m_table.to_be_bytes());
    block[156..156 + fields.root_record.len()].copy_from_slice(&fields.root_record);
    padded_text(&mut block[190..318], &fields.volume.volume_set_id);
    padded_text(&mut block[318..446], "");
    padded_text(&mut block[446..574], "");
    padded_text(&mut block[574..702], "IMAGE-FACTORY");
    padded_text(&mut block[702..813], "");
    let time = UtcTime::from_unix(fields.volume.mtime);
    block[813..830].copy_from_slice(&volume_time(Some(&time)));
    block[830..847].copy_from_slice(&volume_time(Some(&time)));
    block[847..864].copy_from_slice(&volume_time(None));
    block[864..881].copy_from_slice(&volume_time(None));
    block[881] = 1;
    block
}

pub(super) fn descriptor(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK as usize];
    block[0] = kind;
    block[1..6].copy_from_slice(b"CD001");
    block[6] = 1;
    block[7..7 + body.len()].copy_from_slice(body);
    block
}

pub(super) fn boot_record(catalog: u32) -> Vec<u8> {
    let mut body = vec![0u8; 68];
    body[..23].copy_from_slice(b"EL TORITO SPECIFICATION");
    body[64..68].copy_from_slice(&catalog.to_le_bytes());
    descriptor(0, &body)
}

pub(super) fn terminator() -> Vec<u8> {
    descriptor(0xFF, &[])
}

pub(super) fn blocks_of(bytes: u64) -> Result<u32, EngineError> {
    u32::try_from(bytes.div_ceil(BLOCK))
        .map_err(|_| EngineError::InvalidInput(format!("{bytes} bytes are too many ISO blocks")))
}
