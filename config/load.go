package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/spf13/viper"
)

// DefaultPath is read when no --config is given; a missing default file means "all defaults".
const DefaultPath = "config.yaml"

// EnvPrefix starts every environment override: PUSH_ + the key path upper-cased, "." as "_".
const EnvPrefix = "PUSH_"

// Error is a configuration problem; its message names the key (as in API.md) or the file.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Msg) }

// Result is a loaded configuration and where it came from.
type Result struct {
	Config Config
	File   string // the file read, "" when none
}

// Load reads path (DefaultPath when empty; then a missing file is not an error), applies the
// environment overrides found through getenv, and validates the result.
func Load(path string, getenv func(string) string) (Result, error) {
	v := viper.New()
	for _, f := range fields {
		v.SetDefault(f.key, f.def)
	}
	res := Result{}
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	if _, err := os.Stat(path); err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			return res, &Error{Key: path, Msg: "cannot read config file: " + describeFileError(err)}
		}
	} else {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return res, &Error{Key: path, Msg: "cannot parse config file: " + oneLine(err.Error())}
		}
		res.File = path
		if err := unknownKey(v); err != nil {
			return res, err
		}
	}
	for _, f := range fields {
		if val := getenv(envName(f.key)); val != "" {
			v.Set(f.key, val)
		}
	}
	cfg, err := decode(v)
	if err != nil {
		return res, err
	}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	res.Config = cfg
	return res, nil
}

// Default returns the configuration with every key at its default, as config.yaml ships it.
func Default() Config {
	v := viper.New()
	for _, f := range fields {
		v.SetDefault(f.key, f.def)
	}
	cfg, err := decode(v)
	if err != nil {
		panic("config defaults do not decode: " + err.Error()) // a programming error, caught by tests
	}
	return cfg
}

// Keys lists every configuration key in the order of the table, for docs and tests.
func Keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func decode(v *viper.Viper) (Config, error) {
	var cfg Config
	for _, f := range fields {
		if err := f.set(&cfg, v.Get(f.key)); err != nil {
			return cfg, &Error{Key: f.key, Msg: err.Error()}
		}
	}
	return cfg, nil
}

// unknownKey refuses a key in the file that pushlane does not know: a typo must not pass
// silently and leave the default in force. The error names the first unknown key in sorted
// order, with the closest known key as a hint.
func unknownKey(v *viper.Viper) error {
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[strings.ToLower(f.key)] = true
	}
	var unknown []string
	for _, k := range v.AllKeys() {
		if !known[k] && !underKnownKey(k, known) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	msg := "unknown key"
	if hint := closestKey(unknown[0]); hint != "" {
		msg += "; did you mean " + hint + "?"
	} else {
		msg += " (config.yaml in the repository lists every key)"
	}
	if n := len(unknown) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more unknown: %s)", n, strings.Join(unknown[1:], ", "))
	}
	return &Error{Key: unknown[0], Msg: msg}
}

// underKnownKey reports whether k lies inside a known key's value ("auth.apikeys.a" from a map
// given for the list auth.apiKeys): decoding then names the known key and says what is wrong.
func underKnownKey(k string, known map[string]bool) bool {
	for i := 0; i < len(k); i++ {
		if k[i] == '.' && known[k[:i]] {
			return true
		}
	}
	return false
}

func describeFileError(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "no such file"
	}
	return oneLine(err.Error())
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
