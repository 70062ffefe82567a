package search

// Query is a search parsed from a client's parameters and checked against
// the registry: backend-neutral, translated by each store.
//
// NOTE: the expression tree is being built out by the search engine work;
// this is the part of the contract the stores already rely on.
type Query struct {
	Type   string // the resource type searched; "" for a system-level search
	Filter []Expr // all must match (AND)
	Count  int    // page size
	Cursor string // opaque position from a previous Page
	Total  TotalMode
}

// Expr is a node of a search expression.
type Expr interface{ isExpr() }

// IDIn matches resources whose logical id is one of IDs.
type IDIn struct{ IDs []string }

// TokenIn matches resources with a token index entry for Param equal to one
// of Codes (and System, when HasSystem).
type TokenIn struct {
	Param     string
	System    string
	HasSystem bool
	Codes     []string
}

func (IDIn) isExpr()    {}
func (TokenIn) isExpr() {}

// TotalMode is the _total parameter.
type TotalMode string

// The _total modes.
const (
	TotalNone     TotalMode = "none"
	TotalEstimate TotalMode = "estimate"
	TotalAccurate TotalMode = "accurate"
)
