//! Code point classes as llama.cpp's pre-tokenizers see them (\p{L}, \p{N}, \s).

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Letter,
    Number,
    Whitespace,
    /// Anything else inside the text (punctuation, symbols, marks, controls, unassigned).
    Other,
}

pub fn class(c: char) -> Class {
    // llama.cpp's whitespace set is Unicode White_Space, which is what `char::is_whitespace` tests.
    if c.is_whitespace() {
        return Class::Whitespace;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Letter => Class::Letter,
        GeneralCategoryGroup::Number => Class::Number,
        _ => Class::Other,
    }
}
