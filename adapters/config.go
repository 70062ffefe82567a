package adapters

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"gopkg.in/yaml.v3"

	"github.com/signpost-fhir/signpost/auth"
)

// File is an adapters configuration file (serve --adapters FILE), in YAML
// or JSON (docs/adapters.md is the reference):
//
//	retention: 720h
//	adapters:
//	  - name: pas-rh8
//	    kind: hl7v2-pas
//	    principal: {role: provider, organization: RH8}
//	    settings: {…the kind's own settings…}
type File struct {
	// Retention is how long messages delivered or discarded stay in the
	// outbox, and records of inbound messages in the inbox, before the
	// Set prunes them (store.OutboxAdmin.Prune); default DefaultRetention,
	// at least MinRetention. Dead letters and undelivered messages are
	// never pruned.
	Retention Duration   `json:"retention"`
	Adapters  []Instance `json:"adapters" validate:"dive"`

	source string     // the file Load read, for messages
	doc    *yaml.Node // the document Parse read, for the lines of messages
}

// The outbox and inbox retention: the default, and the least allowed (a
// sender may resend an inbound message for a while, and a resend whose
// record was pruned would be applied again).
const (
	DefaultRetention = 30 * 24 * time.Hour
	MinRetention     = time.Hour
)

// retention is f's retention, or the default.
func (f *File) retention() time.Duration {
	if f == nil {
		return DefaultRetention
	}
	return f.Retention.Or(DefaultRetention)
}

// Duration is a time.Duration written as in Go ("720h", "90s") in a
// configuration file.
type Duration time.Duration

// UnmarshalJSON reads "720h"; a negative duration is an error.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"720h\" or \"90s\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"720h\" or \"90s\"", s)
	}
	if v < 0 {
		return fmt.Errorf("duration %s is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "720h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Or returns d as a time.Duration, or def when d is zero (not set).
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// Instance configures one adapter instance.
type Instance struct {
	// Name identifies the instance: in the audit trail (its principal's
	// client id is "adapter/" + Name), the outbox (its destination) and
	// the operator view. Lower-case letters, digits and hyphens.
	Name      string          `json:"name" validate:"required,max=64,instancename"`
	Kind      string          `json:"kind" validate:"required"`
	Principal PrincipalConfig `json:"principal"`
	// Settings are the kind's own, validated by its Factory.
	Settings json.RawMessage `json:"settings"`
}

// PrincipalConfig is who an instance acts as.
type PrincipalConfig struct {
	// Role is one of auth.Roles but patient and operator (neither acts
	// for an organisation's systems); a PAS acts as "provider".
	Role string `json:"role" validate:"required,instancerole"`
	// Organization is the ODS code of the organisation the instance acts
	// for (the trust): the organisation rules limit it to what that
	// organisation may do.
	Organization string `json:"organization" validate:"required,alphanum,max=10"`
}

// ClientIDPrefix starts the client id of every adapter instance's
// principal, so the audit trail tells an adapter from an API client.
const ClientIDPrefix = "adapter/"

// principal is who the instance acts as. Its scopes let it write and read
// every type; the organisation rules and the domain's rules bound it.
func (in Instance) principal() *auth.Principal {
	id := ClientIDPrefix + in.Name
	scopes, raw := auth.ParseScopes(instanceScopes)
	return &auth.Principal{
		Subject: id, ClientID: id,
		Scopes: scopes, RawScopes: append(raw, instanceScopes),
		Organization: in.Principal.Organization,
		Role:         auth.Role(in.Principal.Role),
	}
}

// instanceScopes are an instance's scopes: everything, within its role and
// organisation.
const instanceScopes = "system/*.cruds"

var instanceName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// instanceRoles are the roles an instance may act as.
var instanceRoles = slices.DeleteFunc(slices.Clone(auth.Roles), func(r auth.Role) bool {
	return r == auth.RolePatient || r == auth.RoleOperator
})

// configValidator checks a File's fields, and a kind's settings
// (Validate). Besides validator's own rules: instancename, instancerole
// (one of instanceRoles) and hostport (host:port, port 0 to 65535, 0
// choosing a free one).
var configValidator = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string { return jsonName(f.Tag.Get("json")) })
	_ = v.RegisterValidation("instancename", func(fl validator.FieldLevel) bool { return instanceName.MatchString(fl.Field().String()) })
	_ = v.RegisterValidation("hostport", func(fl validator.FieldLevel) bool {
		host, port, err := net.SplitHostPort(fl.Field().String())
		n, perr := strconv.Atoi(port)
		return err == nil && host != "" && perr == nil && n >= 0 && n <= 65535
	})
	_ = v.RegisterValidation("instancerole", func(fl validator.FieldLevel) bool {
		return slices.Contains(instanceRoles, auth.Role(fl.Field().String()))
	})
	return v
}()

// Load reads an adapters configuration file, YAML or JSON (JSON is YAML),
// and validates it: unknown fields, missing or malformed values and
// duplicate names are errors naming their place in the file, as
// "FILE:LINE: PATH: problem" (PATH such as adapters[0].principal.role).
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, prefixLines(path, err)
	}
	f.source = path
	return f, nil
}

// Parse reads and validates a configuration (Load, from bytes). Every
// problem found is reported, one a line, each starting "LINE: " where the
// line is known.
func Parse(raw []byte) (*File, error) {
	var f File
	doc, err := decode(raw, &f)
	if err != nil {
		return nil, err
	}
	problems := validateFields(&f)
	if f.Retention != 0 && time.Duration(f.Retention) < MinRetention {
		problems = append(problems, problem{path: "retention",
			msg: fmt.Sprintf("%s is shorter than %s: a resent inbound message could be applied twice", time.Duration(f.Retention), MinRetention)})
	}
	first := map[string]int{}
	for i, in := range f.Adapters {
		if j, dup := first[in.Name]; dup && in.Name != "" {
			problems = append(problems, problem{path: fmt.Sprintf("adapters[%d].name", i),
				msg: fmt.Sprintf("%q is used twice (adapters[%d] has it too): names must be unique", in.Name, j)})
			continue
		}
		first[in.Name] = i
	}
	if len(problems) > 0 {
		return nil, problemsError(doc, problems)
	}
	f.doc = doc
	return &f, nil
}

// Decode reads YAML or JSON raw into v, refusing fields v does not have.
// Kinds decode their settings with it: its errors name the field's path
// within raw (listen, tls.cert).
func Decode(raw []byte, v any) error {
	_, err := decode(raw, v)
	if err != nil {
		var ps problems
		if errors.As(err, &ps) {
			for i := range ps.list {
				ps.list[i].line = 0 // lines of settings re-encoded as JSON mean nothing to the reader
			}
			return ps
		}
	}
	return err
}

// decode is Decode, returning the parsed document for problemsError.
func decode(raw []byte, v any) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.Tag == "!!null" { // an empty file
		root = nil
	}
	if root != nil && root.Kind != yaml.MappingNode {
		return nil, problemsError(nil, []problem{{line: root.Line, msg: "the configuration must be a mapping (key: value), not a " + kindName(root)}})
	}
	if ps := checkNode(root, reflect.TypeOf(v), ""); len(ps) > 0 {
		return nil, problemsError(nil, ps)
	}
	var tree any
	if root != nil {
		if err := root.Decode(&tree); err != nil {
			return nil, err
		}
	}
	js, err := json.Marshal(tree)
	if err != nil {
		return nil, err
	}
	if tree == nil {
		js = []byte("{}")
	}
	if err := json.Unmarshal(js, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			path := te.Field
			return nil, problemsError(root, []problem{{path: path, msg: fmt.Sprintf("a %s is expected here, not a %s", typeName(te.Type), te.Value)}})
		}
		return nil, problemsError(root, []problem{{msg: err.Error()}})
	}
	return root, nil
}

// checkNode checks n, to be decoded into a t, before it is: keys t has
// no field for, values of the wrong shape (a list for a string, "ten" for
// a number) and values a field's own decoding refuses (a duration), each
// with its path and line. It follows structs, slices and maps; a
// json.RawMessage (a kind's settings) is the kind's to check. A scalar
// read into a string is marked a string, so that "version: 2.5" is the
// string "2.5", not a number.
func checkNode(n *yaml.Node, t reflect.Type, path string) []problem {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || t == reflect.TypeOf(json.RawMessage(nil)) || n.Tag == "!!null" {
		return nil
	}
	want := func(what string) []problem {
		got := kindName(n)
		if n.Kind == yaml.ScalarNode {
			got = fmt.Sprintf("%q", n.Value)
		}
		return []problem{{path: path, line: n.Line, msg: fmt.Sprintf("%s is expected here, not %s", what, got)}}
	}
	if u, ok := reflect.New(t).Interface().(json.Unmarshaler); ok {
		var v any
		if err := n.Decode(&v); err != nil {
			return []problem{{path: path, line: n.Line, msg: err.Error()}}
		}
		js, _ := json.Marshal(v)
		if err := u.UnmarshalJSON(js); err != nil {
			return []problem{{path: path, line: n.Line, msg: err.Error()}}
		}
		return nil
	}
	var out []problem
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return want("a string")
		}
		n.Tag = "!!str"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return want("a whole number")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return want("true or false")
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return want("a mapping (key: value)")
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			if name := jsonName(f.Tag.Get("json")); name != "" && f.IsExported() {
				fields[name] = f
				names = append(names, name)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				out = append(out, problem{path: join(path, k.Value), line: k.Line,
					msg: fmt.Sprintf("unknown field; the fields here are %s", strings.Join(names, ", "))})
				continue
			}
			out = append(out, checkNode(val, f.Type, join(path, k.Value))...)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return want("a list")
		}
		for i, item := range n.Content {
			out = append(out, checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return want("a mapping (key: value)")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			n.Content[i].Tag = "!!str" // keys are strings
			out = append(out, checkNode(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
		}
	}
	return out
}

// Validate checks v's `validate` tags (go-playground/validator) and
// reports every failure with the field's path and what it must be.
func Validate(v any) error {
	if ps := validateFields(v); len(ps) > 0 {
		return problemsError(nil, ps)
	}
	return nil
}

// validateFields is Validate's list of problems.
func validateFields(v any) []problem {
	err := configValidator.Struct(v)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		if err != nil {
			return []problem{{msg: err.Error()}}
		}
		return nil
	}
	var out []problem
	for _, fe := range verrs {
		path := fe.Namespace()
		if i := strings.IndexByte(path, '.'); i >= 0 {
			path = path[i+1:] // drop the struct's own name
		}
		out = append(out, problem{path: path, msg: rule(fe)})
	}
	return out
}

// rule says what a field that failed validation must be, with its value.
func rule(fe validator.FieldError) string {
	got := fmt.Sprintf(" (it is %q)", fmt.Sprint(fe.Value()))
	switch fe.Tag() {
	case "required":
		return "is required"
	case "required_with":
		return fmt.Sprintf("is required with %s", fe.Param())
	case "instancename":
		return "must be lower-case letters and digits, in words joined by hyphens (such as pas-rh8)" + got
	case "instancerole":
		return fmt.Sprintf("must be one of %q", instanceRoles) + got
	case "hostport":
		return "must be host:port (such as 127.0.0.1:2575; port 0 picks a free one)" + got
	case "oneof":
		return fmt.Sprintf("must be one of %q", strings.Fields(fe.Param())) + got
	case "url":
		return "must be an absolute URL" + got
	case "alphanum":
		return "must be letters and digits only" + got
	case "max":
		return fmt.Sprintf("must be at most %s long", fe.Param()) + got
	case "min":
		return fmt.Sprintf("must have at least %s", fe.Param()) + got
	case "gte":
		return fmt.Sprintf("must be at least %s", fe.Param()) + got
	}
	r := fe.Tag()
	if fe.Param() != "" {
		r += "=" + fe.Param()
	}
	return "does not satisfy " + r + got
}

// problem is one thing wrong in a configuration, at path (adapters[0].name;
// "" for the whole file) on line (0 when unknown).
type problem struct {
	path, msg string
	line      int
}

func (p problem) String() string {
	var b strings.Builder
	if p.line > 0 {
		fmt.Fprintf(&b, "%d: ", p.line)
	}
	if p.path != "" {
		b.WriteString(p.path + ": ")
	}
	b.WriteString(p.msg)
	return b.String()
}

// problems is the error of a configuration with problems, one a line.
type problems struct{ list []problem }

func (ps problems) Error() string {
	lines := make([]string, len(ps.list))
	for i, p := range ps.list {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problemsError is the error of ps, with the line of each problem's path
// in doc where it has none.
func problemsError(doc *yaml.Node, ps []problem) error {
	for i := range ps {
		if ps[i].line == 0 {
			ps[i].line = lineOf(doc, ps[i].path)
		}
	}
	return problems{ps}
}

// prefixLines puts file before every line of err ("FILE:LINE: …" when a
// line starts with one, "FILE: …" otherwise).
func prefixLines(file string, err error) error {
	var ps problems
	if !errors.As(err, &ps) {
		return fmt.Errorf("%s: %w", file, err)
	}
	lines := make([]string, len(ps.list))
	for i, p := range ps.list {
		sep := ": "
		if p.line > 0 {
			sep = ":"
		}
		lines[i] = file + sep + p.String()
	}
	return errors.New(strings.Join(lines, "\n"))
}

// lineOf is the line of path (a.b[2].c) in doc, or of the nearest of its
// parents that is there; 0 without doc.
func lineOf(doc *yaml.Node, path string) int {
	n, line := doc, 0
	if n != nil {
		line = n.Line
	}
	for _, seg := range splitPath(path) {
		if n == nil {
			break
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		if idx, err := strconv.Atoi(seg); err == nil && n.Kind == yaml.SequenceNode {
			if idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
				line = next.Line // the item's
			}
		} else if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					next = n.Content[i+1]
					line = n.Content[i].Line // the key's
					break
				}
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}

// splitPath splits a.b[2].c into a, b, 2, c.
func splitPath(path string) []string {
	return strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' || r == ']' })
}

// join appends a field name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// kindName names a YAML node's kind for a message.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "mapping"
}

// typeName names a Go type for a message, as the file's reader knows it.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "mapping"
	}
	return t.String()
}

// jsonName is a field's name in the file: its json tag's.
func jsonName(tag string) string {
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

// instanceError is the error of adapters[i], whose kind's Factory (or
// lookup) failed with err: the problems a kind found in its settings
// (Decode, Validate) are placed under adapters[i].settings, with their
// lines when f was parsed from a file.
func (f *File) instanceError(i int, err error) []problem {
	var ps problems
	if errors.As(err, &ps) {
		out := make([]problem, len(ps.list))
		for j, p := range ps.list {
			path := join(fmt.Sprintf("adapters[%d].settings", i), p.path)
			out[j] = problem{path: path, msg: p.msg, line: lineOf(f.doc, path)}
		}
		return out
	}
	path := fmt.Sprintf("adapters[%d]", i)
	return []problem{{path: path, msg: err.Error(), line: lineOf(f.doc, path)}}
}

// fileError is the error of problems found in f after it was read.
func (f *File) fileError(ps []problem) error {
	err := problemsError(f.doc, ps)
	if f.source != "" {
		return prefixLines(f.source, err)
	}
	return err
}
