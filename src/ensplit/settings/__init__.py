"""The settings machinery every config is made with, low in the package (it imports only `parsing` and
`errors`, never training, models, experiments, runs, commands or the CLI):

- `factory`: `config_class` (frozen, strictly validated dataclasses with one-line errors) and `FieldGroup`;
- `options`: shared typed options, where each bound and choice is declared once, and checks of plain
  function arguments against them;
- `groups`: the field groups several configs take (runner, device, analysis);
- `fields`: a config's declared types, defaults and help text, read back for options and `--help`;
- `build`: a config from text or config-file values, every failure one line;
- `toml`: config files read and written.
"""

from __future__ import annotations

from ensplit.settings.build import build, closest, own_fields, unknown_field
from ensplit.settings.factory import STRICT, FieldGroup, config_class, field_groups, is_config_class
from ensplit.settings.fields import field_annotations, field_default, field_help, option_help
from ensplit.settings.groups import AnalysisFields, DeviceFields, RunnerFields
from ensplit.settings.options import MAX_SEED, check_choice, check_int
from ensplit.settings.toml import load_toml, loads_toml, settings_to_toml, toml_value

__all__ = ["MAX_SEED", "STRICT", "AnalysisFields", "DeviceFields", "FieldGroup", "RunnerFields", "build",
           "check_choice", "check_int", "closest", "config_class", "field_annotations", "field_default",
           "field_groups", "field_help", "is_config_class", "load_toml", "loads_toml", "option_help", "own_fields",
           "settings_to_toml", "toml_value", "unknown_field"]
