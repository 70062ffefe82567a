package adapters

import (
	"bytes"
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

	"github.com/go-playground/validator/v10"
	"gopkg.in/yaml.v3"

	"github.com/signpost-fhir/signpost/auth"
)

// File is an adapters configuration file (serve --adapters FILE), in YAML
// or JSON:
//
//	adapters:
//	  - name: pas-rh8
//	    kind: hl7v2-pas
//	    principal: {role: provider, organization: RH8}
//	    settings: {…the kind's own settings…}
type File struct {
	Adapters []Instance `json:"adapters" validate:"dive"`
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
	// Role is one of auth.Roles; a PAS acts as "provider".
	Role string `json:"role" validate:"required,role"`
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

// configValidator checks a File's fields, and a kind's settings
// (Validate). Besides validator's own rules: instancename, role (one of
// auth.Roles) and hostport (host:port, port 0 to 65535, 0 choosing a free
// one).
var configValidator = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string { return jsonName(f.Tag.Get("json")) })
	_ = v.RegisterValidation("instancename", func(fl validator.FieldLevel) bool { return instanceName.MatchString(fl.Field().String()) })
	_ = v.RegisterValidation("hostport", func(fl validator.FieldLevel) bool {
		host, port, err := net.SplitHostPort(fl.Field().String())
		n, perr := strconv.Atoi(port)
		return err == nil && host != "" && perr == nil && n >= 0 && n <= 65535
	})
	_ = v.RegisterValidation("role", func(fl validator.FieldLevel) bool {
		return slices.Contains(auth.Roles, auth.Role(fl.Field().String()))
	})
	return v
}()

// Load reads an adapters configuration file, YAML or JSON (JSON is YAML),
// and validates it: unknown fields, missing or malformed values and
// duplicate names are errors naming their place in the file.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse reads and validates a configuration (Load, from bytes).
func Parse(raw []byte) (*File, error) {
	var f File
	if err := Decode(raw, &f); err != nil {
		return nil, err
	}
	if err := Validate(&f); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, in := range f.Adapters {
		if seen[in.Name] {
			return nil, fmt.Errorf("adapters[%d].name: %q is used twice", i, in.Name)
		}
		seen[in.Name] = true
	}
	return &f, nil
}

// Decode reads YAML or JSON raw into v, refusing fields v does not have.
// Kinds decode their settings with it.
func Decode(raw []byte, v any) error {
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if doc == nil {
		js = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading the configuration: %w", err)
	}
	return nil
}

// Validate checks v's `validate` tags (go-playground/validator) and
// reports every failure with the field's path in the file and the rule it
// breaks.
func Validate(v any) error {
	err := configValidator.Struct(v)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return err
	}
	var msgs []string
	for _, fe := range verrs {
		path := fe.Namespace()
		if i := strings.IndexByte(path, '.'); i >= 0 {
			path = path[i+1:] // drop the struct's own name
		}
		rule := fe.Tag()
		if fe.Param() != "" {
			rule += "=" + fe.Param()
		}
		msgs = append(msgs, fmt.Sprintf("%s: %q does not satisfy %s", path, fmt.Sprint(fe.Value()), rule))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// jsonName is a field's name in the file: its json tag's.
func jsonName(tag string) string {
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}
