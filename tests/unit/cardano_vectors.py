"""Published test vectors for the Cardano role's cryptography and file formats (tests/unit/test_cardano_*.py).

Each is copied from a public repository's test or configuration tree, named below with its path and the commit it
was read at; hex strings are the text envelopes' ``cborHex`` (CBOR), split over lines. No vector here is made up.
What could not be found: cardano-base publishes no KES test vectors (its KES tests are properties over random keys,
cardano-crypto-class/testlib/Test/Crypto/KES.hs), and no published file pairs a KES signature with its message.
"""

from __future__ import annotations

# IntersectMBO/cardano-cli at dd0fc0f0969873d5857393f2b5e7587b8e120690,
# cardano-cli/test/cardano-cli-golden/files/input/shelley/ (files unchanged since d52b178b, 2023; written by
# cardano-cli in June 2020). The golden tests compare only their type and description, not their bytes.
# keys/kes_keys/signing_key: type KesSigningKey_ed25519_kes_2^6, but 704 bytes: a sum of seven levels (32 + 7 * 96),
# from before Sum6 (608 bytes) was settled; its verification key (keys/kes_keys/verification_key) is its top level's.
CLI_KES_SKEY_CBOR = (
    "5902c01d58cf6c2d27078b77e576c2fd5f4af8a5d9ca64e69657d9ad2d70494df837d13be156fdaf95ba5097c7e5c1e19050"
    "c3517e96727e0e526570e99ad252332e8750ea81155404fb1b343f9cc7a8c87b7ca1c2d5b6e6e90e7c39749740435e41907c"
    "a45bec163a3e8e619c15422652c96179be19abdef474ab1f5ca694de0768682947566c3bbf1ef7f361f893167c08c429ae1a"
    "f1d60914ba75a20cd3f00aad14de6dbfb4bd9ba34dd9060a09aac8a8fd471d97946be4d1e99f040191d5a6647ef169d480e2"
    "c72ab69a72ce9b6e584531ba53e9256fcea253015bad80a5629a3c737b2f0c5f1f4aa94fd48780d25e5dda323cf4fb389ed7"
    "41877128f5d0323d7c8b86b61e8510cc29b8182c598ddfd2e234981ab8c4794e7207d18efc37c406edbc5c749072b57f53d5"
    "0ab13520d6465e3bc3cdf85fae880d0539263c876d6e50913bc014a213c4837827e4cd9e5e7a4c56e5c21a6729f623442f8d"
    "598b7eb1c497c3c46588d883e737f904020d047ee3a8040fa910738f53a8775aa37098182b40f19b810c6291e60f231be3ba"
    "2d547cdb74ec09fd560b50867e0b28317c19cb8e6b27a603c488b81c697f7237ee52c8a5e4be5eb736282497f08167d31b2f"
    "8927f909b7d33c2d0ea300f0ab8f8afdc9c4cdb17c15e2d24811151a262345f972c406fb2893f08b2854c752bce89fcd3416"
    "59bfde6d0aaa12bdd15ea298dea17842566f10214bbc6f50ce09c5d19c57960efe2e3eb35830851f2c9cac3c917b7acd88d8"
    "6dd91050b8ad6b2804423e9e30fc3e45fd36ca165155433b89380d931ba62c731bbfeffa504014aa77ca4265e24faf8e4ab1"
    "f31486fb387b7721006ebf089aa3a4a70ad32082781ff9a1d02de6f9ff1e9ebf5cbf1fe785c05fecfa08e575a2e39da792a8"
    "67692878880bb7f1c678427dee808e485e29ad54b8f66d6a3f8fff63ff34185e38e1c6108e18393afb379fb407fdacda4ac1"
    "18df3a9573ac45"
)
CLI_KES_VKEY_CBOR = "5820db9a67e7a991341c95d2afb4be90bc6cf80ee60339e51145f163ba4394f5b64d"
# keys/vrf_keys/signing_key and verification_key (VrfSigningKey_PraosVRF, VrfVerificationKey_PraosVRF)
CLI_VRF_SKEY_CBOR = (
    "5840b492808849dcf749f9992d2be4b3d6928a19fa796c654b2219763b73ee5aaf892397922de810ace9c5c8a10dc077999e"
    "59a239a8c90cca96d150c48dc7c9be8b"
)
CLI_VRF_VKEY_CBOR = "58202397922de810ace9c5c8a10dc077999e59a239a8c90cca96d150c48dc7c9be8b"
# keys/genesis_delegate_keys/: an Ed25519 cold key pair (GenesisDelegate{Signing,Verification}Key_ed25519; the same
# key is transaction-sign/node-cold.skey as a StakePoolSigningKey_ed25519) and its issue counter, next number 0
CLI_COLD_SKEY_CBOR = "582086f64a96dd4b476cbd6e8adf36d0aa9ecc091f9865e1ffc14057ef9710daa7e3"
CLI_COLD_VKEY_CBOR = "58200ef55ad974b238209f51d0eed5ffbb00220a9811c0481eaf127ceb1c525f1eb6"
CLI_COUNTER_CBOR = "820058200ef55ad974b238209f51d0eed5ffbb00220a9811c0481eaf127ceb1c525f1eb6"
# certificates/operational_certificate (NodeOperationalCertificate, description ""): counter 0, KES period 1000; its
# cold signing key is not published, and its signature is over the CBOR of (vk, n, c0), the ledger's signable of 2020
# (today's is the raw bytes: ledger's OCertSignable)
CLI_OPCERT_CBOR = (
    "828458206f958f84c7622f1494018dc2b1b4bcb591d1acb364487974d851b5968bbff88a001903e858407bf5e99c876a35d8"
    "64ddd47768209952690dd089db8e5e815a507f1f9bc4d0428d47be27eb6627d2648e404073fd6cfbccf0bad38b91e129a2d8"
    "3c2f3c20870d5820954e34eaf570563f61696bfb018ca2421d1464bc6ae5177bcde98605ad7da6fe"
)
# the whole file, as cardano-cli wrote it
CLI_OPCERT_FILE = (
    '{\n    "type": "NodeOperationalCertificate",\n    "description": "",\n    "cborHex": "'
    + CLI_OPCERT_CBOR
    + '"\n}\n'
)

# IntersectMBO/ouroboros-network, playground/ (the KES agent's playground): cold.skey and cold.vkey at
# 8afd1f227e05457398d2be6a3691f0b6e9352495, opcert.cert at 50ccd9f2b4bfb0640914991296ab9df5f1c45961, issued by
# playground/make-cert.sh (`cardano-cli node issue-op-cert --kes-verification-key-file kes.vkey --cold-signing-key-file
# cold.skey ... --kes-period 1430`) for the kes.vkey of the same commit (582072c229eb...): counter 13, KES period 1430.
PLAYGROUND_COLD_SKEY_FILE = (
    '{\n    "type": "StakePoolSigningKey_ed25519",\n    "description": "Stake Pool Operator Signing Key",\n'
    '    "cborHex": "5820bb2836ffed6ab649e0f5d61bc14399ffd49bb7a25eb426c44f08d964fb548e84"\n}\n'
)
PLAYGROUND_COLD_VKEY_CBOR = "5820a5cf65642c07cbab2f9d796509576cd797c22da9d927a1a844baf1de6d0b949c"
PLAYGROUND_KES_VKEY_CBOR = "582072c229eba2404316653cc36352ba3cff83b8ae4017c370a52dc762baec4c2d5c"
PLAYGROUND_OPCERT_CBOR = (
    "8284582072c229eba2404316653cc36352ba3cff83b8ae4017c370a52dc762baec4c2d5c0d1905965840615e9af9fc8efef3"
    "98cfbe00b0696aa017fe190e0fcf7b374b6ac5165028b726006e892b58d0aab419d9bfa45cd15efac670dc64ae6275e0a0b9"
    "56820c15f3005820a5cf65642c07cbab2f9d796509576cd797c22da9d927a1a844baf1de6d0b949c"
)
PLAYGROUND_OPCERT_FILE = (
    '{\n    "type": "NodeOperationalCertificate",\n    "description": "",\n    "cborHex": "'
    + PLAYGROUND_OPCERT_CBOR
    + '"\n}\n'
)

# blinklabs-io/dingo at 2031e4fdb98e4a48aa4cb7134039f140f3ceac0c, config/cardano/devnet/keys/ (a devnet's
# producer, made with cardano-cli; opcert.cert unchanged since 3beea376): kes.skey, a Sum6 key of 608 bytes as
# generated (period 0), and opcert.cert for its verification key, counter 0, KES period 0 (the cold signing key is
# not published)
DEVNET_KES_SKEY_CBOR = (
    "590260a199f16b11da6c7f5c1e0f1eb0b9bbe278d3d8f35bfd50d0951c2ff94d0344cd57df5f64c9bac1dd60b4482f9c6361"
    "68f40737d526625a2ec82f22ec0c72de0013f86ef743a7bba0286db6ddf3d85bf8e49ddbf14d9d3b7ee22f4857c77b740948"
    "f84f2e72f6bcf91f405e34ea50a2c53fa4876b43cfce2bcfe87c06a903de8bb33d968ca7930b67d0c23f5cb2d74e422d773b"
    "a80e388de384691000d6ba8a9b4dc7d3187f76048fbef9a52b72d80d835bb76eced7c0e0cdc5b58869b73c095dffa01db4ff"
    "51765afcead565395a5ed1cf74e5f2134d61076fece21aacd080bbbfaab94125401d7bbc74eafc7e7e3a2235f59dc03d6e33"
    "2e53d558493a1e22213b92c77b1328ff1b83855da704fc366bf4415490602481d1939136eeaf252c65184912a779d9d94a90"
    "e32b72c1877ef60b6d79e707ce5a762acb4bed46436efe4fe62aae50b39068cc508a09427c92791cbcbea44318529cc68d29"
    "7ca24e1b73b2394c385ec63fcd85ed56eec3de48860a1ec950aad4f91cbf741dbd7bf1d3c278875bd20e31ff5372339f6aa5"
    "280ad9b8bf3514889ac44600fe57ca0b535d6dc6b0b981e079595aad186ee0be9b07e837391ab165e4ca406601c876a86e24"
    "6a3f53311e21199cccc0b080f28d18f4dc6987731e10e4ade00df7c6921c5ef3022b6f49a29ba307a2c8f4bd2ba42fcfa0aa"
    "d68a2f0ad31fff69a99d3471f9036d3f5817a3edfeff7fc3c14e1151d767aaa043481cfd1a6ee55e8e5d7853ecdaf9da2bb3"
    "6c716beae8d706bc648a790d4697e1d044a11a49f305ab8bc64a094bd81bda7395fe6f77dd5557c39919dd9bb9cf22a87fe4"
    "7408ae3ec2247007d015a5"
)
DEVNET_OPCERT_CBOR = (
    "828458204cd49bb05e9885142fe7af1481107995298771fd1a24e72b506a4d600ee2b3120000584089fc9e9f551b2ea873bf"
    "31643659d049152d5c8e8de86be4056370bccc5fa62dd12e3f152f1664e614763e46eaa7a17ed366b5cef19958773d1ab969"
    "41442e0b58205a3d778e76741a009e29d23093cfe046131808d34d7c864967b515e98dfc3583"
)
