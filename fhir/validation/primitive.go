package validation

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// defaultMaxLength is the R4 limit on any string: 1 MB of characters.
const defaultMaxLength = 1024 * 1024

// checkPrimitive validates one primitive JSON value against its type and
// returns the IssueType code and a description of the problem, or "" when the
// value is valid.
func checkPrimitive(td *typeDef, v any, maxLength int) (code, problem string) {
	p := td.prim
	switch x := v.(type) {
	case string:
		if p.json != jsonString {
			return "structure", fmt.Sprintf("expected %s, got string %s", p.json, quote(x))
		}
		if x == "" {
			return "value", "empty string is not allowed"
		}
		if strings.TrimSpace(x) == "" {
			return "value", "a string must contain more than whitespace"
		}
		if maxLength == 0 {
			maxLength = defaultMaxLength
		}
		// The limit is on strings; base64Binary (attachment data) is bounded
		// by the request size limit and the owning capability instead.
		if td.name != "base64Binary" && len(x) > maxLength && utf8.RuneCountInString(x) > maxLength {
			return "value", fmt.Sprintf("string is longer than %d characters", maxLength)
		}
		if td.name == "xhtml" {
			t := strings.TrimSpace(x)
			if !strings.HasPrefix(t, "<div") || !strings.HasSuffix(t, ">") {
				return "value", "narrative must be an XHTML <div> element"
			}
			return "", ""
		}
		if p.regex != nil && !p.regex.MatchString(x) || p.calendar && !validDay(x) {
			return "value", fmt.Sprintf("%s is not a valid %s", quote(x), td.name)
		}
	case json.Number:
		if p.json != jsonNumber {
			return "structure", fmt.Sprintf("expected %s, got number %s", p.json, x)
		}
		s := string(x)
		if p.regex != nil && !p.regex.MatchString(s) {
			return "value", fmt.Sprintf("%s is not a valid %s", s, td.name)
		}
		if p.min != nil || p.max != nil {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || p.min != nil && n < *p.min || p.max != nil && n > *p.max {
				return "value", fmt.Sprintf("%s is out of range for %s", s, td.name)
			}
		}
	case bool:
		if p.json != jsonBool {
			return "structure", fmt.Sprintf("expected %s, got boolean %t", p.json, x)
		}
	case []any:
		return "structure", fmt.Sprintf("expected %s, got an array", p.json)
	case map[string]any:
		return "structure", fmt.Sprintf("expected %s, got an object", p.json)
	}
	return "", ""
}

// validDay reports whether the day of a date, dateTime or instant (already
// matching its regex) exists in its month.
func validDay(s string) bool {
	if len(s) < 10 {
		return true
	}
	year, _ := strconv.Atoi(s[0:4])
	month, _ := strconv.Atoi(s[5:7])
	day, _ := strconv.Atoi(s[8:10])
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && (year%4 == 0 && year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

// quote renders a client's string for a diagnostic, cut short if long.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}
