package render

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"unicode"

	"sigs.k8s.io/kustomize/api/builtins"
	"sigs.k8s.io/kustomize/api/types"
	sigsyaml "sigs.k8s.io/yaml"
)

// MaxGeneratorBytes bounds what one configMapGenerator or secretGenerator
// reads: its keys and values together. The API server refuses a ConfigMap
// or Secret whose data passes 1 MiB, so a generator that reads more could
// never be applied; refusing it before kustomize works names the entry.
const MaxGeneratorBytes = 1 << 20

// generatorInputs bounds what a configMapGenerator or secretGenerator (the
// entry of kustomization file, reading files relative to the folder dir)
// makes kustomize build. kustomize sets the keys into the object's data
// one at a time, each after a search of those set before, so its time
// grows with the square of the keys, as it does for a wide mapping in a
// file (20,000 literals, or an env file of 20,000 lines, take it tens of
// seconds): a generator gets at most MaxMappingKeys keys, counting its
// literals, its files and the lines of its env files, and at most
// MaxGeneratorBytes of keys and values, and a wide one counts against the
// build's MaxWideWork like a wide mapping. The files are read through the
// sandbox (confined, capped, cached: kustomize later gets the same bytes);
// one that cannot be read is left for kustomize to report.
func (v *vetter) generatorInputs(file, dir, entry string, kv types.KvPairSources) error {
	tooMany := func(keys int) error {
		return refusal(file, entry, ErrTooLarge, fmt.Sprintf("%d keys from literals, files and env files, more than %d (kustomize's time grows with the square of the keys)", keys, MaxMappingKeys))
	}
	keys, size := len(kv.LiteralSources)+len(kv.FileSources), 0
	if keys > MaxMappingKeys {
		return tooMany(keys)
	}
	for _, l := range kv.LiteralSources {
		size += len(l)
	}
	for _, s := range kv.FileSources {
		data, err := v.generatorFile(dir, fileSourcePath(s))
		if err != nil {
			return err
		}
		size += len(s) + len(data)
	}
	envs := kv.EnvSources
	if kv.EnvSource != "" {
		envs = append(envs[:len(envs):len(envs)], kv.EnvSource)
	}
	for _, e := range envs {
		data, err := v.generatorFile(dir, e)
		if err != nil {
			return err
		}
		keys += envKeys(data)
		size += len(data)
	}
	if keys > MaxMappingKeys {
		return tooMany(keys)
	}
	if size > MaxGeneratorBytes {
		return refusal(file, entry, ErrTooLarge, fmt.Sprintf("%d bytes of literals, files and env files, more than %d (the API server refuses a ConfigMap or Secret over 1 MiB)", size, MaxGeneratorBytes))
	}
	if keys >= wideWorkMin {
		return v.b.addWideWork(file, entry, int64(keys)*int64(keys))
	}
	return nil
}

// generatorFile reads a file a generator names, relative to dir; a file
// that does not exist or is not a regular file reads as empty (kustomize
// reports it).
func (v *vetter) generatorFile(dir, p string) ([]byte, error) {
	joined, err := joinRel(dir, p)
	if err != nil {
		return nil, nil // vetted as a path already; kustomize reports it
	}
	_, data, err := v.b.readFile(joined)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return nil, nil
	}
	return data, err
}

// envKeys counts the keys kustomize reads from an env file: every line
// that is not empty or a comment once leading white space is trimmed (the
// rules of kustomize's kv.keyValuesFromLine).
func envKeys(data []byte) int {
	n := 0
	for line := range bytes.Lines(data) {
		line = bytes.TrimLeftFunc(line, unicode.IsSpace)
		if len(line) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}

// generatorSources returns the sources of a built-in generator plugin's
// config, decoded as the plugin decodes it, or nil for a kind that is not
// a ConfigMapGenerator or SecretGenerator.
func generatorSources(kind string, config []byte) (*types.KvPairSources, error) {
	switch kind {
	case "ConfigMapGenerator":
		var p builtins.ConfigMapGeneratorPlugin
		err := sigsyaml.Unmarshal(config, &p)
		return &p.KvPairSources, err
	case "SecretGenerator":
		var p builtins.SecretGeneratorPlugin
		err := sigsyaml.Unmarshal(config, &p)
		return &p.KvPairSources, err
	}
	return nil, nil
}
