//! `bitfield!`: typed register and dword definitions.
//!
//! Fields are declared as `hi:lo name: type` (plus `/ setter` for writable fields). Every
//! shift and mask in the driver lives in the expansion of this macro; the rest of the code only
//! uses the typed accessors. Field bounds are checked at compile time: a field must fit in the
//! raw type, a `bool` field must be exactly one bit, and an integer field must fit its type.

/// Declares a transparent newtype over an unsigned integer with typed field accessors.
macro_rules! bitfield {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($raw:ty) {
            $(
                $(#[$fmeta:meta])*
                $hi:literal : $lo:literal $get:ident $(/ $set:ident)? : $fty:tt;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Default)]
        #[repr(transparent)]
        $vis struct $name(pub $raw);

        impl $name {
            $(
                $(#[$fmeta])*
                #[inline]
                pub const fn $get(self) -> $fty {
                    bitfield!(@get $raw, $fty, self.0, $hi, $lo)
                }
                $(
                    #[doc = concat!("Returns a copy with `", stringify!($get), "` set to `v`.")]
                    #[inline]
                    #[must_use]
                    pub const fn $set(self, v: $fty) -> Self {
                        let mask: $raw = <$raw>::MAX >> (<$raw>::BITS - 1 - ($hi - $lo));
                        // CAST: widening `v` to the raw type; excess bits are masked off.
                        let v = (bitfield!(@raw $raw, $fty, v)) & mask;
                        Self((self.0 & !(mask << $lo)) | (v << $lo))
                    }
                )?
            )*
        }

        const _: () = {
            $(
                assert!($hi >= $lo, "field bits are hi:lo");
                assert!($hi < <$raw>::BITS, "field does not fit the register");
                bitfield!(@check $fty, $hi, $lo);
            )*
        };

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($get), &self.$get()))*
                    .finish()
            }
        }

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for $raw {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
    (@get $raw:ty, bool, $v:expr, $hi:literal, $lo:literal) => {
        (($v >> $lo) & 1) != 0
    };
    (@get $raw:ty, $fty:ty, $v:expr, $hi:literal, $lo:literal) => {{
        let mask: $raw = <$raw>::MAX >> (<$raw>::BITS - 1 - ($hi - $lo));
        // CAST: the masked value fits `$fty` (checked at compile time below).
        (($v >> $lo) & mask) as $fty
    }};
    (@raw $raw:ty, bool, $v:expr) => {
        $v as $raw
    };
    (@raw $raw:ty, $fty:ty, $v:expr) => {
        $v as $raw
    };
    (@check bool, $hi:literal, $lo:literal) => {
        assert!($hi == $lo, "a bool field must be exactly one bit");
    };
    (@check $fty:ty, $hi:literal, $lo:literal) => {
        assert!($hi - $lo < <$fty>::BITS, "field is wider than its type");
    };
}

pub(crate) use bitfield;
