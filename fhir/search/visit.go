package search

// Visitor handles every kind of node of a search expression, one method
// each: Visit calls the one for a node's type. Code that must treat every
// kind (a store's translation, the oracle) implements it rather than
// switching on the type, so that a new kind of node, which adds a method
// here, fails to compile wherever it has not been handled. T is what a
// visit returns.
type Visitor[T any] interface {
	IDIn(IDIn) T
	TokenIn(TokenIn) T
	TokenText(TokenText) T
	StringMatch(StringMatch) T
	DateMatch(DateMatch) T
	NumberMatch(NumberMatch) T
	RefIn(RefIn) T
	URIMatch(URIMatch) T
	Near(Near) T
	Missing(Missing) T
	CompositeMatch(CompositeMatch) T
	Or(Or) T
	Not(Not) T
	Chain(Chain) T
	Has(Has) T
}

// Visit calls the method of v for e's type and returns what it returns. e
// must not be nil.
func Visit[T any](e Expr, v Visitor[T]) T {
	c := &visitCall[T]{v: v}
	e.accept(c)
	return c.out
}

// TreeVisitor handles the structure of a search expression: its branches,
// which hold other expressions, one method each, and every leaf (a test of
// one parameter's values) through Leaf. Code that walks or rewrites the
// tree (access control confining chains, checks of which parameters a
// search uses) implements it; a new kind of branch fails to compile
// wherever it has not been handled, and a new leaf reaches Leaf.
type TreeVisitor[T any] interface {
	Leaf(Leaf) T
	Or(Or) T
	Not(Not) T
	Chain(Chain) T
	Has(Has) T
}

// VisitTree calls the method of v for e's kind and returns what it
// returns. e must not be nil.
func VisitTree[T any](e Expr, v TreeVisitor[T]) T {
	return Visit[T](e, tree[T]{v})
}

// Leaf is a node that tests the values of one search parameter and holds
// no other expression: every node but Or, Not, Chain and Has.
type Leaf interface {
	Expr
	// Parameter is the parameter the leaf tests (its Param field): "_id"
	// for IDIn, the composite parameter for CompositeMatch.
	Parameter() string
}

// The leaves.
var (
	_ Leaf = IDIn{}
	_ Leaf = TokenIn{}
	_ Leaf = TokenText{}
	_ Leaf = StringMatch{}
	_ Leaf = DateMatch{}
	_ Leaf = NumberMatch{}
	_ Leaf = RefIn{}
	_ Leaf = URIMatch{}
	_ Leaf = Near{}
	_ Leaf = Missing{}
	_ Leaf = CompositeMatch{}
)

// Parameter implements Leaf: IDIn tests the logical id.
func (IDIn) Parameter() string { return "_id" }

// Parameter implements Leaf.
func (x TokenIn) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x TokenText) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x StringMatch) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x DateMatch) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x NumberMatch) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x RefIn) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x URIMatch) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x Near) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x Missing) Parameter() string { return x.Param }

// Parameter implements Leaf.
func (x CompositeMatch) Parameter() string { return x.Param }

// visitCall is what a node's accept calls (accept cannot have a type
// parameter): it calls the method of v for the node and keeps the result.
type visitCall[T any] struct {
	v   Visitor[T]
	out T
}

func (c *visitCall[T]) idIn(x IDIn)                     { c.out = c.v.IDIn(x) }
func (c *visitCall[T]) tokenIn(x TokenIn)               { c.out = c.v.TokenIn(x) }
func (c *visitCall[T]) tokenText(x TokenText)           { c.out = c.v.TokenText(x) }
func (c *visitCall[T]) stringMatch(x StringMatch)       { c.out = c.v.StringMatch(x) }
func (c *visitCall[T]) dateMatch(x DateMatch)           { c.out = c.v.DateMatch(x) }
func (c *visitCall[T]) numberMatch(x NumberMatch)       { c.out = c.v.NumberMatch(x) }
func (c *visitCall[T]) refIn(x RefIn)                   { c.out = c.v.RefIn(x) }
func (c *visitCall[T]) uriMatch(x URIMatch)             { c.out = c.v.URIMatch(x) }
func (c *visitCall[T]) near(x Near)                     { c.out = c.v.Near(x) }
func (c *visitCall[T]) missing(x Missing)               { c.out = c.v.Missing(x) }
func (c *visitCall[T]) compositeMatch(x CompositeMatch) { c.out = c.v.CompositeMatch(x) }
func (c *visitCall[T]) or(x Or)                         { c.out = c.v.Or(x) }
func (c *visitCall[T]) not(x Not)                       { c.out = c.v.Not(x) }
func (c *visitCall[T]) chain(x Chain)                   { c.out = c.v.Chain(x) }
func (c *visitCall[T]) has(x Has)                       { c.out = c.v.Has(x) }

// caller is the non-generic face of visitCall that accept takes.
type caller interface {
	idIn(IDIn)
	tokenIn(TokenIn)
	tokenText(TokenText)
	stringMatch(StringMatch)
	dateMatch(DateMatch)
	numberMatch(NumberMatch)
	refIn(RefIn)
	uriMatch(URIMatch)
	near(Near)
	missing(Missing)
	compositeMatch(CompositeMatch)
	or(Or)
	not(Not)
	chain(Chain)
	has(Has)
}

// tree is a TreeVisitor as a Visitor: every leaf goes to Leaf.
type tree[T any] struct{ v TreeVisitor[T] }

func (t tree[T]) IDIn(x IDIn) T                     { return t.v.Leaf(x) }
func (t tree[T]) TokenIn(x TokenIn) T               { return t.v.Leaf(x) }
func (t tree[T]) TokenText(x TokenText) T           { return t.v.Leaf(x) }
func (t tree[T]) StringMatch(x StringMatch) T       { return t.v.Leaf(x) }
func (t tree[T]) DateMatch(x DateMatch) T           { return t.v.Leaf(x) }
func (t tree[T]) NumberMatch(x NumberMatch) T       { return t.v.Leaf(x) }
func (t tree[T]) RefIn(x RefIn) T                   { return t.v.Leaf(x) }
func (t tree[T]) URIMatch(x URIMatch) T             { return t.v.Leaf(x) }
func (t tree[T]) Near(x Near) T                     { return t.v.Leaf(x) }
func (t tree[T]) Missing(x Missing) T               { return t.v.Leaf(x) }
func (t tree[T]) CompositeMatch(x CompositeMatch) T { return t.v.Leaf(x) }
func (t tree[T]) Or(x Or) T                         { return t.v.Or(x) }
func (t tree[T]) Not(x Not) T                       { return t.v.Not(x) }
func (t tree[T]) Chain(x Chain) T                   { return t.v.Chain(x) }
func (t tree[T]) Has(x Has) T                       { return t.v.Has(x) }

var _ caller = (*visitCall[any])(nil)
