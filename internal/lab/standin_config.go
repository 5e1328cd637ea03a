package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The stand-in's configuration is read as inmanta-server reads its own
// (src/inmanta/config.py, Config.load_config and Config.get): a
// configparser over a list of files, later files winning, unreadable files
// skipped without a word, and INMANTA_<SECTION>_<OPTION> environment
// variables over every file. docs/orchestrator.md says which file each
// rule follows.

// StandinConfig is the configuration the stand-in runs with.
type StandinConfig struct {
	// Files are the files it tried, in order; Loaded those it read.
	Files, Loaded []string
	sections      map[string]map[string]string
	env           func(string) (string, bool)
}

// ConfigFiles lists the files inmanta-server reads, in the order of
// Config.load_config: the main file, the *.cfg files of the configuration
// directory sorted by name, ~/.inmanta.cfg, .inmanta and .inmanta.cfg of
// the working directory, then the file given with -c.
func ConfigFiles(mainFile, configDir, home, minC string) []string {
	files := []string{mainFile}
	if entries, err := os.ReadDir(configDir); err == nil && configDir != "" {
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".cfg") {
				names = append(names, filepath.Join(configDir, e.Name()))
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	files = append(files, filepath.Join(home, ".inmanta.cfg"), ".inmanta", ".inmanta.cfg")
	if minC != "" {
		files = append(files, minC)
	}
	return files
}

// LoadStandinConfig reads files as configparser's read does: a file that
// cannot be opened (missing, or unreadable by this user) is skipped
// silently; a file that cannot be parsed is an error, as the server fails
// to start on it.
func LoadStandinConfig(files []string, env func(string) (string, bool)) (*StandinConfig, error) {
	c := &StandinConfig{Files: files, sections: map[string]map[string]string{}, env: env}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			// configparser.read catches OSError: missing, unreadable by
			// this user, a directory: all the same, no word said.
			continue
		}
		if err := c.parse(f, string(b)); err != nil {
			return nil, err
		}
		c.Loaded = append(c.Loaded, f)
	}
	return c, nil
}

var (
	sectionLine = regexp.MustCompile(`^\[(.+)\]`)
	optionLine  = regexp.MustCompile(`^(.*?)\s*([=:])\s*(.*)$`)
)

// normalizeOption is LenientConfigParser.optionxform: _ and - are one
// character (normalize_name writes -), and names are lower case.
func normalizeOption(name string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), "_", "-"))
}

// parse reads one file with configparser's default rules: # and ; start a
// comment line (no inline comments), [section] headers, key = value or
// key: value, indented lines continue a value, a duplicate section or
// option within one file is an error (strict mode), DEFAULT holds
// fallbacks.
func (c *StandinConfig) parse(file, text string) error {
	var section, option string
	seenSections := map[string]bool{}
	seenOptions := map[string]bool{}
	for i, raw := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if indented := raw[0] == ' ' || raw[0] == '\t'; indented && option != "" {
			c.sections[section][option] += "\n" + line
			continue
		}
		if m := sectionLine.FindStringSubmatch(line); m != nil {
			section, option = m[1], ""
			if seenSections[section] {
				return fmt.Errorf("%s:%d: section %q already exists (configparser DuplicateSectionError)", file, i+1, section)
			}
			seenSections[section] = true
			if c.sections[section] == nil {
				c.sections[section] = map[string]string{}
			}
			continue
		}
		if section == "" {
			return fmt.Errorf("%s:%d: file contains no section headers (configparser MissingSectionHeaderError)", file, i+1)
		}
		m := optionLine.FindStringSubmatch(line)
		if m == nil || m[1] == "" {
			return fmt.Errorf("%s:%d: %q is neither an option nor a section (configparser ParsingError)", file, i+1, line)
		}
		option = normalizeOption(m[1])
		if seenOptions[section+"\x00"+option] {
			return fmt.Errorf("%s:%d: option %q in section %q already exists (configparser DuplicateOptionError)", file, i+1, option, section)
		}
		seenOptions[section+"\x00"+option] = true
		c.sections[section][option] = m[3]
	}
	return nil
}

// EnvName is the environment variable that overrides an option
// (_get_env_var_name_for_config_option): INMANTA_SECTION_OPTION, - and .
// written _, upper case.
func EnvName(section, option string) string {
	n := "INMANTA_" + section + "_" + normalizeOption(option)
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(n))
}

// Get returns an option's raw value: the environment variable, else the
// configuration files (DEFAULT as fallback), else def.
func (c *StandinConfig) Get(section, option, def string) string {
	if v, ok := c.Lookup(section, option); ok {
		return v
	}
	return def
}

// envValue is the option's environment variable, when it is set.
func (c *StandinConfig) envValue(section, option string) (string, bool) {
	if c.env == nil {
		return "", false
	}
	return c.env(EnvName(section, option))
}

// Lookup is Get without a default.
func (c *StandinConfig) Lookup(section, option string) (string, bool) {
	if c.env != nil {
		if v, ok := c.env(EnvName(section, option)); ok {
			return v, true
		}
	}
	option = normalizeOption(option)
	if v, ok := c.sections[section][option]; ok {
		return v, true
	}
	v, ok := c.sections["DEFAULT"][option]
	return v, ok
}

// Int is an is_int or is_time option.
func (c *StandinConfig) Int(section, option string, def int) (int, error) {
	v, ok := c.Lookup(section, option)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%s.%s: %q is not an integer", section, option, v)
	}
	return n, nil
}

// Bool is an is_bool option: configparser's BOOLEAN_STATES.
func (c *StandinConfig) Bool(section, option string, def bool) (bool, error) {
	v, ok := c.Lookup(section, option)
	if !ok {
		return def, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s.%s: not a boolean: %s", section, option, v)
}

// List is an is_list option: comma-separated, each trimmed.
func (c *StandinConfig) List(section, option, def string) []string {
	v := c.Get(section, option, def)
	if v == "" {
		return nil
	}
	var out []string
	for _, x := range strings.Split(v, ",") {
		out = append(out, strings.TrimSpace(x))
	}
	return out
}

// Sections returns the names of the sections whose name starts with
// prefix, sorted.
func (c *StandinConfig) Sections(prefix string) []string {
	var out []string
	for s := range c.sections {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
