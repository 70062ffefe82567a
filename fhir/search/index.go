package search

// ParamType is a search parameter's type, as in SearchParameter.type.
type ParamType string

// The search parameter types of FHIR R4.
const (
	Number    ParamType = "number"
	Date      ParamType = "date"
	String    ParamType = "string"
	Token     ParamType = "token"
	Reference ParamType = "reference"
	Composite ParamType = "composite"
	Quantity  ParamType = "quantity"
	URI       ParamType = "uri"
	Special   ParamType = "special"
)

// Entry is one index value extracted from a resource for one search
// parameter. Entries are computed from the resource's JSON at write time and
// stored with the version they describe. Which fields are set depends on Type:
//
//	string:    Text (normalised: lower case, accents removed), Value (as written)
//	token:     System, Value (the code), Text (display / text, normalised, for :text)
//	uri:       Value
//	reference: RefType and RefID for a relative or local reference; Value for
//	           an absolute URL to another server or a canonical;
//	           Identifier references index as System/Value with Type Token
//	           under Param+":identifier"
//	date:      Low, High: unix microseconds, the half-open range [Low, High)
//	number:    NumLow, NumHigh: the range the value's precision implies
//	quantity:  NumLow, NumHigh, System, Value (the unit code)
//	composite: Components: one tuple of values found under one element the
//	           parameter's base expression reaches (one Observation
//	           component, one useContext), one entry per component in the
//	           definition's order, each typed and filled as above with
//	           Param the component's own parameter code. A base element
//	           whose components have several values gives one composite
//	           entry per combination; one lacking a component gives none.
//
// Composite entries are the only ones with Components; stores that predate
// them see an unknown Type and may refuse the write, never misread it.
type Entry struct {
	Param   string // the parameter code, e.g. "start"
	Type    ParamType
	System  string
	Value   string
	Text    string
	RefType string
	RefID   string
	Low     int64
	High    int64
	NumLow  float64
	NumHigh float64
	// Components are a composite entry's component values (see above).
	Components []Entry
}
