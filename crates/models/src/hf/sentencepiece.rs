//! A SentencePiece `tokenizer.model` (a protobuf `ModelProto`): its pieces, scores and types,
//! read as llama.cpp's converter reads them through the `sentencepiece` package
//! (`_create_vocab_sentencepiece`). A bounds-checked reader of the few fields that matter; a
//! file that is not one is refused, never a panic.

/// One piece: text, score, and the converter's token type (NORMAL 1, UNKNOWN 2, CONTROL 3,
/// UNUSED 5, BYTE 6; a user-defined piece reads as NORMAL, as `sentencepiece` reports it).
pub struct Piece {
    pub text: String,
    pub score: f32,
    pub ty: i32,
}

pub struct Model {
    pub pieces: Vec<Piece>,
    /// TrainerSpec.model_type: 1 unigram, 2 BPE.
    pub model_type: u64,
}

/// Parse `tokenizer.model`.
pub fn parse(bytes: &[u8]) -> Result<Model, String> {
    let mut model = Model {
        pieces: Vec::new(),
        model_type: 1,
    };
    for field in Fields(bytes) {
        match field? {
            (1, Wire::Bytes(piece)) => model.pieces.push(parse_piece(piece)?),
            (2, Wire::Bytes(trainer)) => {
                for f in Fields(trainer) {
                    if let (3, Wire::Varint(t)) = f? {
                        model.model_type = t;
                    }
                }
            }
            _ => {}
        }
    }
    if model.pieces.is_empty() {
        return Err("tokenizer.model holds no pieces".into());
    }
    Ok(model)
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, String> {
    let mut piece = Piece {
        text: String::new(),
        score: 0.0,
        ty: 1,
    };
    for field in Fields(bytes) {
        match field? {
            (1, Wire::Bytes(text)) => {
                piece.text = String::from_utf8(text.to_vec())
                    .map_err(|_| "tokenizer.model has a piece that is not UTF-8".to_string())?
            }
            (2, Wire::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Wire::Varint(t)) => {
                piece.ty = match t {
                    2 => 2, // UNKNOWN
                    3 => 3, // CONTROL
                    5 => 5, // UNUSED
                    6 => 6, // BYTE
                    1 | 4 => 1,
                    other => return Err(format!("tokenizer.model has a piece of type {other}")),
                }
            }
            _ => {}
        }
    }
    Ok(piece)
}

enum Wire<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

/// The (field number, value) pairs of one message.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or("tokenizer.model is cut short")?;
            self.0 = rest;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("tokenizer.model has a varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        if n > self.0.len() as u64 {
            return Err("tokenizer.model has a field longer than the file".into());
        }
        let (head, rest) = self.0.split_at(n as usize);
        self.0 = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Wire::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Wire::Fixed64
                }
                2 => {
                    let n = self.varint()?;
                    Wire::Bytes(self.take(n)?)
                }
                5 => {
                    let b = self.take(4)?;
                    Wire::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                other => {
                    return Err(format!(
                        "tokenizer.model is not a protobuf (wire type {other})"
                    ))
                }
            };
            Ok((key >> 3, value))
        })();
        if field.is_err() {
            self.0 = &[]; // one error, then stop
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7F) as u8;
            n >>= 7;
            out.push(b | if n > 0 { 0x80 } else { 0 });
            if n == 0 {
                return;
            }
        }
    }

    fn bytes_field(number: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    #[test]
    fn pieces_scores_and_types_are_read() {
        let mut piece = Vec::new();
        bytes_field(1, "▁the".as_bytes(), &mut piece);
        piece.push(2 << 3 | 5);
        piece.extend((-3.5f32).to_le_bytes());
        piece.extend([3 << 3, 4]); // user-defined: read as normal
        let mut trainer = Vec::new();
        trainer.extend([3 << 3, 2]);
        let mut model = Vec::new();
        bytes_field(1, &piece, &mut model);
        bytes_field(2, &trainer, &mut model);
        let m = parse(&model).unwrap();
        assert_eq!(m.model_type, 2);
        assert_eq!(
            (m.pieces[0].text.as_str(), m.pieces[0].score, m.pieces[0].ty),
            ("▁the", -3.5, 1)
        );
    }

    #[test]
    fn hostile_files_are_refused() {
        for bad in [
            &b""[..],
            &[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..], // a length past the end
            &[0x0B][..],                               // wire type 3
            &[0x0A, 0x02, 0x0A, 0x05][..],             // a piece whose text runs out
            &[
                0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ][..],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
