//! Fixed sets of metric label values as enums: each variant is written once,
//! with its text, and the set's `ALL` comes from the same list, so the series
//! created at 0 and the values counted cannot differ, nor a variant be left out.

/// Declares an enum whose variants are a label's values:
///
/// ```ignore
/// label_set! {
///     /// Doc.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq)]
///     pub enum Outcome {
///         /// Doc of a value.
///         Ok => "ok",
///         Error => "error",
///     }
/// }
/// ```
///
/// gives `Outcome::ALL` (every variant, in the order written, so
/// `ALL[v as usize] == v` and an array in that order is indexed by the value)
/// and `Outcome::as_str` (a `const fn`: a match, no allocation).
macro_rules! label_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }
    };
}

pub(crate) use label_set;

#[cfg(test)]
mod tests {
    label_set! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Sample {
            /// A documented value.
            First => "first",
            Second => "second",
        }
    }

    #[test]
    fn all_lists_every_value_in_order_with_its_text() {
        assert_eq!(Sample::ALL, [Sample::First, Sample::Second]);
        assert!(Sample::ALL
            .iter()
            .enumerate()
            .all(|(i, v)| *v as usize == i));
        let texts: Vec<_> = Sample::ALL.map(Sample::as_str).to_vec();
        assert_eq!(texts, ["first", "second"]);
    }
}
