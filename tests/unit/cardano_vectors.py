"""Published test vectors for the Cardano role's cryptography and file formats (tests/unit/test_cardano_*.py).

Each is copied from a public repository's test or configuration tree, named below with its path and the commit it
was read at; hex strings are the text envelopes' ``cborHex`` (CBOR), split over lines. No vector here is made up.
What could not be found: cardano-base publishes no KES test vectors (its KES tests are properties over random keys,
cardano-crypto-class/testlib/Test/Crypto/KES.hs), nor does any published file pair a KES signing key with a
signature it made; KES signatures are checked on block headers producers signed (the end of this file), and key
generation and evolution on published signing keys whose verification keys cardano-base computed.
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

# Block headers signed by real producers' Sum6 KES keys (cardano-node's), as txpipe/pallas keeps them in test_data/:
# a header is [header_body, kes_signature]; the signature is over the header body's bytes as they stand, at evolution
# kp - c0 (the slot's KES period less the certificate's start), and the certificate in the body is the issuer's.
# test_data/alonzo26.header at 162e290157fc2b46aaa7ed9954ba5009111df4c9: a TPraos header of block 0, slot 0
# (certificate: counter 0, start 0): evolution 0.
ALONZO_HEADER = (
    "828f0000f658206907a24fc62affc690ae4c61044d4874c7c013333a5e94d4669a69dba7a0201f582029b2880af81ef578e7"
    "506bd7e840db694b08647dc803ee99b25ae9dd3c4e221082584057768126fd510b5ebf4555725cc04cb8d582c865d41c52aa"
    "26fc78583a384820de2d561dc864650a5d70f476eeaaee1472ed6d17cde3d40bbba835cbc3726acf58506b77911a16a65a88"
    "73c86dafa4017227bbcc56b7ddbee2a12d28366f2b9e6aa0212591d9a47d71cd82e6749027a69b66655b2cedb8277ead6573"
    "db8e4c0d627429f6bc56c5be2a8332854edb1ed35d00825840644696bd766ee07a357559282ffa3001b70115a78c4f20a011"
    "a611a4a2b23621039f462913c0deb95e50d3652b1897f06012cd42c1082f213b13e13e547d08b15850bc20d89f10c103836d"
    "264284e35b8affc6defc7cfece3105b9b9e5e63025bada42272ea8e43ab65a9371175566e51fed8a3adb803426e5f8a896bb"
    "b93937e5f2562df4b144d3eef57d8eb364bd77250b04582029571d16f081709b3c48651860077bebf9340abb3fc7133443c5"
    "4f1f5a5edcf1582012963cf7b37ed0cbcd39f8d45c3bc7911137be765944daf77288e369dfaf3adb00005840e2e734e33cc2"
    "3cd86a11180b9f6e71eecdfef519ec0b067f0b2703a2dc4edafb652c77544c7f383e0f3c8355c7cbbefe35933c6ffa7aedb7"
    "861fee5065793a0707025901c029fbfaadbf4656c60ed5e1a772b4879cf4fb04b87c375ef9681849faec7766b7a11b580541"
    "945aecaeeb84e27afcf1f64e2dc7d6299ee4cc2548be0450ae060ddef15249e0ec1779047bfc7483b8422dd3275bb48aa6a1"
    "87dc8d75b07e727628423165c40dd6a995aa4378f82802aace6cd008cb710ea11f614d4818eb5075f51f74c2310ab48176f2"
    "aa1adcc1dbef0562b944ab809b6fa1380133ab38776e52a34ff3909c05bb8b3ae4118262f430679d0d58d0323eef159407f3"
    "a430c4baa9f6cd78fbab647abfde4c01a313389cfe6cd6bf8634142fe81af6c638c7dc77d677a9894bb6f444815b4aa6c2a2"
    "4da64b702f46e58ce8fa93b0061fa2f412ba375831607fb315f6d7823b64e8af135c666d54315b5977484494eb97db70da03"
    "98e93494988cb7b97d679cac4ccce6bd5b22e3b687fbc62e613aa4cdb2e1bea64715e7da5c1c8c839d629e07274bca48736f"
    "1d97fcf29eda46c4a8aef14f84fb7361ae32324a562f79070eeee0794c1751da919829971797b2683007c9bba4a9903fc60e"
    "ed1cff1cd755ee98b0099db8aebbec26a3ff918f6730dcfbe5f24de6edcd3aeff3b2f62a14c01d9a2a33e232cffc95f26abb"
    "20e6bb9fc461a176adca50"
)

# test_data/babbage1.block at f67d36e7fa32b1a690f8f74dd50bd7f62d801006 (its header: the block's bytes 3 to 861; a
# Vasil development testnet's block 44697 at slot 1029948, certificate counter 0, start 0): the signature verifies at
# evolution 11 and at no other, as 1029948 // 86400 (that chain's slotsPerKESPeriod is not published with it).
BABBAGE_HEADER = (
    "828a19ae991a000fb73c582068e0b30103cba96819b7f7abbe80f4aae6fb35270c3c77c4a8f82d9ab21a920e582063fc404a"
    "8f5635aa133818457a406f62d946dd35362ef78429da4953b5125ab15820a9a971c7cc826c53a9a1690ae9c6a46123d85ac9"
    "0641c859da408cbc7ce6b3eb825840e5b74253ccd2a78e4e5653499151fb1c01e0c009d3b6e80feb4d15c6ef10abe9683b65"
    "2ca968a1ae124be7b59eb1f4ebfd882671da49101635b1995e1e42a2ef58500ec054de37747089cd4fd9864b2fe17cdb2567"
    "adf9ee89a44c29e81fad88d663bd76d6abd65848ba0df146df1f95a6eb16e7d794332323e359442a9f2830d5b5b052e00bcd"
    "147c7e5bed987a70580f021903385820219f8b90967156d6ee02e3507ccb413b5a8d87343706cbd9e8fb1e1285e4b3c08458"
    "20840ba03379518ab70200edd70a984cd5fcf4ef8f0994c95cc394d3e7243de3f100005840a352185eb0e2783206e23d0aa2"
    "5b8d799a228266baf65de832cd2b64d666fbdd5649461d3cd30f721bc04e94bb9f97c31335ee39893247eaf9912cfa688785"
    "048207005901c0954157d0a93992a0cda655574074541b92a5d12cba0a94dc8dc7c97de407dc6bbb463810a6fec0ae47c7d4"
    "d3cddcb51485616e924448e9850369efdf9f248d0ff052309c26385a7bff045e39d4afdb90cc114b06215ee4c2ba026b9109"
    "aecf87e0547eeab8973a3f5903403fea20416357881a2226733dafd3700154992ad454f75383438acab170e4fca6691d40ed"
    "986df32b006d9408cb70a1265c52673cb7c361b646b8a1e47b92b015dd82743ce75680caa0b3337dbec280b91d4fcf31e976"
    "30d09977f264eb4c4794647734532a36538896e640982f52649f808a26e71782232617c944e8ab2bf62e59772123b68d136b"
    "3a06c0d3263fbfc51f4225a18d788b4f45b62741472e72d107be72e63265cf83f389b4ced1b5246e5f4b1c2aeb35d7f60b1e"
    "417940b917f0ad9cc7962f28dcd243cac00b7a4c2d233a1e3dc0749d5430d777d41425c9cac7f7232f620f0ed8e5f400b7c2"
    "a1508e5e61adcd2d5bf76d9db9576cd1d87ba1912567b493c7e20756e970a731a05ee20ef2db22f8b7959323025072ecdb16"
    "3adb96878bea9aee92b67556ae38ee764e37ce65d74c5c4255ec86defaf48cd31d9ab7b868606f050c816119d7c00dbbf66c"
    "248cbfc4a2"
)

# test_data/conway1.block at 37603402f6d913061ece27c22c75296262b32040 (its header: bytes 3 to 862; block 436043 at
# slot 8726400, certificate counter 1, start 55): with 129600 slots per KES period, period 67, evolution 12.
CONWAY_HEADER = (
    "828a1a0006a74b1a0085278058205a2bedc548a6732060f715b822ae57b5eeb988787f6fbddc69fd02256fc9a2365820cf51"
    "24233de9189fe7f6ebad48ae4f07179f89ca17803d5ec287be452d7b8ce0582087c785c69ea5200aed464f405731830616dd"
    "c4217806f505ce5ad936a7010480825840c2ec56851c5ecae42e29ede8c72ff121333fb9fa22871fc6519c9e6b979320341c"
    "d0eca626114803787724bddaa6c1172af966353b56027eb9b5a65729ecd87e585042772d5fb097f9a91bea7866b66220a409"
    "5a5c900df515ce7dd6c1aece777f28235480720f19222276931afd3b0efd0b046251ee8c1f1cfc454a4aad7cb9eaec2faf3a"
    "fbea5c4445b141f97c50c7600504582029571d16f081709b3c48651860077bebf9340abb3fc7133443c54f1f5a5edcf18458"
    "2087a0a572e4edd77c9d80640e4cd56fc21a183fac47bfda954de7fa730fc12dfc0118375840c40abe1646eef8f2cce47f8e"
    "beb118e4cec497d046052119376bea2be3dcd6bd2d963dc07f438b9097ada5084149607815d011f12cd265c4bd3b9cc0a8ba"
    "ba078209005901c00123aea865e744b5d1eee435e13b7d4a431815cb3d354a9a21a3b21d2e844fe7fa8c63fb8b594c4339c3"
    "58ed3b548ac9a77e63e731b7628f74431ffdca50ea011029c10d9369a9e233ad8d3d9e822e6dd808f5459827dd1928e0b668"
    "2aab2b1c7c22909b2ba74961141b68f3b6d1b30120849a5c4b9515c3d583d57ed3b3b44322f1412b146f28ce710e02c183c7"
    "f3d94ad0a735c54e2e8f78ec4dea951e0ce9f8c2dfef245315c46d916d8bdf72f79315564cad51e450fbf472ec9d47714704"
    "9423ee652a7377f053863bbcda7901a776f9a128d20ccc949bda6a3531f0c15686b1822eba848792758b83b5f0580e5e1ec9"
    "8258cf8f23f6424f07315a274b89ddcb014536b8fa18ef354e74638bc163e800db5f0383c7b26e87281ffd1abbe6043755d1"
    "f564fcdd0b9653bde4e0d0bf305e08b4fd8384131331d7983f903c27d736bbb4df905f37a0283e741a630ec933b26e108c65"
    "a4a1c9971a85cf19180273450411736dc3aa5e2b27ee5e3f70c6f9e0d991bceb212721af7bcc8c6aa8c6a2a5fabf4125f9c8"
    "ea20e740a3a190aaabbe31e858b53698f2ae04941df8d5a0e97853cb55ae20e48c7ee2d2af3ca0b6dae440623d2b0918761f"
    "26e778a65778"
)
