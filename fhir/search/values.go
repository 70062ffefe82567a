package search

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Range bounds for open-ended date ranges (a Period without start or end).
const (
	MinTime int64 = math.MinInt64
	MaxTime int64 = math.MaxInt64
)

// DateRange returns the half-open range [low, high), in unix microseconds,
// that a FHIR date, dateTime or instant value covers at its precision:
// "2026" is the whole year, "2026-03-29" the whole (local) day,
// "2026-03-29T10:00" one minute, "2026-03-29T10:00:00.5Z" 100 ms. Values
// without a zone (dates, and times without an offset) are read in loc, so a
// day across a clock change is 23 or 25 hours long.
func DateRange(s string, loc *time.Location) (low, high int64, err error) {
	bad := func() (int64, int64, error) {
		return 0, 0, fmt.Errorf("%q is not a valid date, dateTime or instant", s)
	}
	num := func(from, n int) (int, bool) {
		if len(s) < from+n {
			return 0, false
		}
		v := 0
		for i := from; i < from+n; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok {
		return bad()
	}
	switch {
	case len(s) == 4:
		lo := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
		return lo.UnixMicro(), lo.AddDate(1, 0, 0).UnixMicro(), nil
	case len(s) == 7 && s[4] == '-':
		m, ok := num(5, 2)
		if !ok || m < 1 || m > 12 {
			return bad()
		}
		lo := time.Date(year, time.Month(m), 1, 0, 0, 0, 0, loc)
		return lo.UnixMicro(), lo.AddDate(0, 1, 0).UnixMicro(), nil
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return bad()
	}
	m, ok1 := num(5, 2)
	d, ok2 := num(8, 2)
	if !ok1 || !ok2 || m < 1 || m > 12 || d < 1 || d > daysIn(year, m) {
		return bad()
	}
	if len(s) == 10 {
		lo := time.Date(year, time.Month(m), d, 0, 0, 0, 0, loc)
		return lo.UnixMicro(), time.Date(year, time.Month(m), d+1, 0, 0, 0, 0, loc).UnixMicro(), nil
	}
	if s[10] != 'T' {
		return bad()
	}
	hh, ok1 := num(11, 2)
	if !ok1 || len(s) < 16 || s[13] != ':' {
		return bad()
	}
	mm, ok2 := num(14, 2)
	if !ok2 || hh > 23 || mm > 59 {
		return bad()
	}
	i := 16
	sec, nanos := 0, 0
	width := int64(time.Minute / time.Microsecond)
	if i < len(s) && s[i] == ':' {
		var ok bool
		if sec, ok = num(17, 2); !ok || sec > 60 {
			return bad()
		}
		i = 19
		width = int64(time.Second / time.Microsecond)
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			digits := s[i+1 : j]
			if len(digits) == 0 {
				return bad()
			}
			if len(digits) > 9 {
				digits = digits[:9]
			}
			f, _ := strconv.Atoi(digits)
			nanos = f * int(math.Pow10(9-len(digits)))
			width = 1
			if len(digits) < 6 {
				width = int64(math.Pow10(6 - len(digits)))
			}
			i = j
		}
	}
	zone := loc
	switch rest := s[i:]; {
	case rest == "":
	case rest == "Z":
		zone = time.UTC
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || oh > 14 || om > 59 {
			return bad()
		}
		off := oh*3600 + om*60
		if rest[0] == '-' {
			off = -off
		}
		zone = time.FixedZone("", off)
	default:
		return bad()
	}
	t := time.Date(year, time.Month(m), d, hh, mm, sec, nanos, zone)
	lo := t.UnixMicro()
	return lo, lo + width, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// NumberRange returns the range a decimal value implies by its precision:
// "100" is [99.5, 100.5), "1.50" is [1.495, 1.505), "1e2" is [50, 150).
func NumberRange(s string) (low, high float64, err error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, fmt.Errorf("%q is not a valid number", s)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	half := 0.5 * math.Pow10(exp-decimals)
	return v - half, v + half, nil
}

// Normalize folds s for string search: Unicode compatibility decomposition,
// accents (combining marks) removed, lower case, runs of white space
// collapsed to one space and trimmed. "Zoë  O'Brien" becomes "zoe o'brien".
func Normalize(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if (c >= 'A' && c <= 'Z') || c == '\t' || c == '\n' || c == '\r' ||
			(c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ')) {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
