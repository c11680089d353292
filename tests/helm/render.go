// Command render is a test-only stand-in for `helm template`: no helm binary can be installed
// on the project's machines (none on Debian 12, PyPI or npm), so the chart tests render
// deploy/helm/egressor with this, built from Debian's Go toolchain and the same libraries
// Helm's engine uses (text/template, Masterminds/sprig, sigs.k8s.io/yaml).
//
// It follows Helm 3's engine (helm.sh/helm/v3/pkg/engine) for what the chart uses: values.yaml
// deep-merged with -f files (later wins, null deletes), the built-in objects .Values,
// .Release, .Chart, .Files (Get, Glob, AsConfig, Lines) and .Template, sprig's functions
// without env/expandenv, Helm's include, tpl, required, fail, toYaml, fromYaml, toJson,
// fromJson and lookup (empty, as in `helm template`), missingkey=zero with "<no value>"
// removed, --strict for missingkey=error, and NOTES.txt rendered apart (--notes FILE).
//
//	render [--strict] [--name RELEASE] [--namespace NS] [--notes FILE] [-f VALUES]... CHART
//
// Output: each non-empty rendered template as "---\n# Source: CHART/templates/FILE\n…",
// in file-name order. Exit 1 with the template's error on failure.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// Files is Helm's .Files: the chart's files outside templates/ and the chart's own metadata.
type Files map[string][]byte

func (f Files) Get(name string) string { return string(f[name]) }

func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

// AsConfig renders the files as a ConfigMap's data block, keyed by base name.
func (f Files) AsConfig() string {
	data := map[string]string{}
	for name, content := range f {
		data[path.Base(name)] = string(content)
	}
	out, _ := yaml.Marshal(data)
	return strings.TrimSuffix(string(out), "\n")
}

func (f Files) Lines(name string) []string {
	s := strings.TrimSuffix(string(f[name]), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func toYAML(v interface{}) string {
	out, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func toJSON(v interface{}) string {
	out, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(out)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

// merge deep-merges src over dst as Helm merges -f files: maps merge, anything else
// replaces, and null deletes the key.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func readYAML(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

type chart struct {
	name      string
	meta      map[string]interface{}
	templates map[string]string // "NAME/templates/FILE" → text
	files     Files
}

func loadChart(dir string) (*chart, error) {
	meta, err := readYAML(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	name, _ := meta["name"].(string)
	if name == "" {
		return nil, errors.New("Chart.yaml: no name")
	}
	c := &chart{name: name, templates: map[string]string{}, files: Files{}}
	// Helm exposes Chart.yaml's fields capitalised: .Chart.Name, .Chart.AppVersion.
	c.meta = map[string]interface{}{}
	for k, v := range meta {
		c.meta[strings.ToUpper(k[:1])+k[1:]] = v
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates[name+"/"+rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" ||
			rel == ".helmignore" || strings.HasPrefix(rel, "charts/"):
		default:
			c.files[rel] = data
		}
		return nil
	})
	return c, err
}

func render(c *chart, values map[string]interface{}, release map[string]interface{}, strict bool) (map[string]string, error) {
	root := template.New("gotpl")
	if strict {
		root.Option("missingkey=error")
	} else {
		root.Option("missingkey=zero")
	}
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includes := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if includes[name] > 1000 {
			return "", fmt.Errorf("include %q: too deep", name)
		}
		includes[name]++
		defer func() { includes[name]-- }()
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs)

	names := make([]string, 0, len(c.templates))
	for n := range c.templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := root.New(n).Parse(c.templates[n]); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		data := map[string]interface{}{
			"Values":   values,
			"Release":  release,
			"Chart":    c.meta,
			"Files":    c.files,
			"Template": map[string]interface{}{"Name": n, "BasePath": c.name + "/templates"},
			"Capabilities": map[string]interface{}{
				"KubeVersion": map[string]interface{}{"Version": "v1.37.0", "Major": "1", "Minor": "37"},
			},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, n, data); err != nil {
			return nil, err
		}
		out[n] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

func main() {
	var files valueFiles
	strict := flag.Bool("strict", false, "fail on a missing value key (missingkey=error)")
	name := flag.String("name", "egressor", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	notes := flag.String("notes", "", "write the rendered NOTES.txt to this file")
	flag.Var(&files, "f", "values file to merge over the chart's values.yaml (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [--strict] [--name R] [--namespace NS] [--notes FILE] [-f VALUES]... CHART")
		os.Exit(2)
	}
	dir := flag.Arg(0)
	if err := run(dir, *name, *namespace, *notes, files, *strict); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(dir, name, namespace, notes string, files []string, strict bool) error {
	c, err := loadChart(dir)
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		over, err := readYAML(f)
		if err != nil {
			return err
		}
		values = merge(values, over)
	}
	release := map[string]interface{}{
		"Name": name, "Namespace": namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}
	out, err := render(c, values, release, strict)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var stream strings.Builder
	for _, n := range names {
		text := out[n]
		if path.Base(n) == "NOTES.txt" {
			if notes != "" {
				if err := os.WriteFile(notes, []byte(text), 0o644); err != nil {
					return err
				}
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&stream, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(text))
	}
	_, err = os.Stdout.WriteString(stream.String())
	return err
}
