"""Fuzz target: the party configuration parser (delegate/config.cc, through
tflite_mpc._native._fuzz_parse_config).

    python tests/fuzz/fuzz_config.py -max_total_time=300 -dict=tests/fuzz/config.dict CORPUS_DIR

Errors must be ValueError naming the file; anything else, or a crash, is a bug."""
import json
import sys

import atheris

from fuzz_common import native

_native = native()


def seeds():
    cfg = {"protocol": "rep3", "truncation": "exact", "transport": "tls", "timeout": 30, "ca": "certs/ca.pem",
           "roles": {"data_owner": 0, "model_owner": 1, "output_to": [0]},
           "parties": [{"id": i, "host": "10.0.0.1", "port": 7000 + i, "cert": f"c{i}.pem", "key": f"k{i}.key"}
                       for i in range(3)]}
    plain = dict(cfg, transport="tcp-insecure", ca="")
    return [json.dumps(cfg).encode(), json.dumps(plain, indent=1).encode(), b'{"parties": [1, 2], "x": [[]]}']


@atheris.instrument_func
def TestOneInput(data):
    try:
        ports = _native._fuzz_parse_config(data)
    except ValueError as e:
        assert str(e).startswith("party configuration /fuzz/parties.json"), e
        return
    assert len(ports) == 3 and all(0 < p <= 65535 for p in ports), ports


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
