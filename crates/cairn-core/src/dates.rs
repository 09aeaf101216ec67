//! Calendar dates and RFC 3339 timestamps, parsed by hand: the core needs
//! only days since the epoch and instants, and no date crate on the
//! allowlist is worth its build time for that.

/// Days since 1970-01-01 for a `YYYY-MM-DD` date; `None` if it is not a real date.
pub fn parse_date_days(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &text[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month[(month - 1) as usize] {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Milliseconds since the epoch for an RFC 3339 timestamp
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`), the fraction cut to
/// milliseconds.
pub fn parse_datetime_ms(text: &str) -> Option<i64> {
    datetime_instant(text).map(|instant| instant.0)
}

/// The instant an RFC 3339 timestamp names, as milliseconds since the
/// epoch and the nanoseconds within that millisecond: two texts of the
/// same instant (another offset, more digits) give the same value.
pub fn datetime_instant(text: &str) -> Option<(i64, u32)> {
    if text.len() < 20 || !text.is_char_boundary(10) {
        return None;
    }
    let days = parse_date_days(&text[..10])?;
    let rest = &text[10..];
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix('t'))?;
    if rest.len() < 9 || rest.as_bytes()[2] != b':' || rest.as_bytes()[5] != b':' {
        return None;
    }
    let two = |s: &str| -> Option<i64> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (hour, minute, second) = (two(&rest[0..2])?, two(&rest[3..5])?, two(&rest[6..8])?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut tail = &rest[8..];
    let mut nanos = 0i64;
    if let Some(fraction) = tail.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = format!("{:0<9}", &fraction[..digits]).parse().ok()?;
        tail = &fraction[digits..];
    }
    let millis = nanos / 1_000_000;
    let offset_minutes = match tail {
        "Z" | "z" => 0,
        _ if tail.len() == 6
            && (tail.starts_with('+') || tail.starts_with('-'))
            && tail.as_bytes()[3] == b':' =>
        {
            let (hours, minutes) = (two(&tail[1..3])?, two(&tail[4..6])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            sign * (hours * 60 + minutes)
        }
        _ => return None,
    };
    let ms = ((days * 24 + hour) * 60 + minute - offset_minutes) * 60_000 + second * 1000 + millis;
    Some((ms, (nanos % 1_000_000) as u32))
}

/// `YYYY-MM-DD` for days since 1970-01-01 (the inverse of
/// [`parse_date_days`]; Howard Hinnant's `civil_from_days`).
pub fn format_date_days(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `ms` since the epoch (UTC).
pub fn format_datetime_ms(ms: u64) -> String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (hours, minutes) = (rest / 3_600_000, rest / 60_000 % 60);
    let (seconds, millis) = (rest / 1000 % 60, rest % 1000);
    format!(
        "{}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z",
        format_date_days(days as i64)
    )
}

/// The date `years` after the day of `ms` (UTC), `YYYY-MM-DD`: how long a
/// record written then must be kept (29 February gives 28 February in a
/// year without one).
pub fn years_after(ms: u64, years: u32) -> String {
    let day = format_date_days((ms / 86_400_000) as i64);
    let (year, rest) = day.split_at(4);
    let year: i64 = year.parse().unwrap_or(1970) + i64::from(years);
    let shifted = format!("{year:04}{rest}");
    if parse_date_days(&shifted).is_some() {
        shifted
    } else {
        format!("{year:04}-02-28")
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn formatting_inverts_parsing() {
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2026-11-30",
            "2100-03-01",
            "1969-12-31",
        ] {
            let days = parse_date_days(text).unwrap();
            assert_eq!(format_date_days(days), text);
        }
        for days in -800..800_i64 {
            assert_eq!(
                parse_date_days(&format_date_days(days * 37)),
                Some(days * 37)
            );
        }
    }

    #[test]
    fn datetimes_format_as_rfc_3339_that_parses_back() {
        for ms in [0_u64, 1_764_505_123_456, 951_782_400_999, 4_102_444_799_000] {
            let text = format_datetime_ms(ms);
            assert_eq!(parse_datetime_ms(&text), Some(ms as i64), "{text}");
        }
        assert_eq!(format_datetime_ms(1_000), "1970-01-01T00:00:01.000Z");
    }
}
