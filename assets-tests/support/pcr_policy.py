"""Recomputes the PCR 11 policies of a signed UKI from its sections, independently of the
factory (pefile for the PE file, hashlib for the hashes, openssl for the RSA signatures), and
checks every `.pcrsig` against them.

usage: pcr_policy.py UKI PCR_PUBLIC_KEY_PEM
prints JSON: {"profiles": <count>, "pol": [<sha256-bank policy of each profile>]}
"""

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import pefile

ORDER = [".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname",
         ".sbat", ".pcrpkey", ".profile", ".dtbauto", ".hwids"]
BANKS = {"sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
PHASES = ["enter-initrd", "leave-initrd", "enter-machined"]


def predicted(bank, measured):
    value = bytes(hashlib.new(bank).digest_size)
    def extend(data):
        nonlocal value
        value = hashlib.new(bank, value + hashlib.new(bank, data).digest()).digest()
    for name in ORDER:
        if name in measured:
            extend(name.encode() + b"\0")
            extend(measured[name])
    for phase in PHASES:
        extend(phase.encode())
    return value


def policy(bank, pcr):
    selection = struct.pack(">IHB3s", 1, BANKS[bank], 3, b"\x00\x08\x00")
    return hashlib.sha256(bytes(32) + bytes.fromhex("0000017F") + selection
                          + hashlib.sha256(pcr).digest()).digest()


def verify(bank, digest, signature, key, work):
    digest_file = os.path.join(work, "digest")
    signature_file = os.path.join(work, "signature")
    with open(digest_file, "wb") as out:
        out.write(digest)
    with open(signature_file, "wb") as out:
        out.write(signature)
    result = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", key,
                             "-pkeyopt", f"digest:{bank}", "-in", digest_file,
                             "-sigfile", signature_file], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{bank} signature does not verify: {result.stdout}{result.stderr}")


def main():
    uki, key = sys.argv[1], sys.argv[2]
    pe = pefile.PE(uki)
    sections = [(s.Name.rstrip(b"\0").decode(), s.get_data()[:s.Misc_VirtualSize])
                for s in pe.sections]
    public_der = subprocess.run(["openssl", "rsa", "-pubin", "-in", key, "-RSAPublicKey_out",
                                 "-outform", "DER"], capture_output=True, check=True).stdout
    fingerprint = hashlib.sha256(public_der).hexdigest()

    first = next((i for i, (name, _) in enumerate(sections) if name == ".profile"), None)
    base = sections if first is None else sections[:first]
    groups = [[]] if first is None else []
    if first is not None:
        for name, data in sections[first:]:
            if name == ".profile":
                groups.append([])
            groups[-1].append((name, data))
    base_measured = {}
    for name, data in base:
        base_measured.setdefault(name, data)
    policies = []
    with tempfile.TemporaryDirectory() as work:
        for group in groups:
            measured = dict(base_measured)
            signatures = [data for name, data in group if name == ".pcrsig"]
            if first is None:
                signatures = [data for name, data in sections if name == ".pcrsig"]
            for name, data in group:
                measured[name] = data
            if len(signatures) != 1:
                raise SystemExit(f"profile {group[:1]}: {len(signatures)} .pcrsig sections")
            document = json.loads(signatures[0])
            if sorted(document) != sorted(BANKS):
                raise SystemExit(f"banks {sorted(document)}")
            for bank in BANKS:
                (entry,) = document[bank]
                expected = policy(bank, predicted(bank, measured))
                if entry["pcrs"] != [11] or entry["pkfp"] != fingerprint:
                    raise SystemExit(f"{bank}: {entry}")
                if entry["pol"] != expected.hex():
                    raise SystemExit(f"{bank}: pol {entry['pol']} != {expected.hex()}")
                verify(bank, hashlib.new(bank, expected).digest(),
                       base64.b64decode(entry["sig"]), key, work)
                if bank == "sha256":
                    policies.append(entry["pol"])
    print(json.dumps({"profiles": len(groups), "pol": policies}))


main()
