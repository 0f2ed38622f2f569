"""Safety filter: rule-based harm categories, optionally backed by a classifier.

Rules are regular expressions per harm category, written around harmful *intent or instructions*
(a verb of doing harm with its object: "build a pipe bomb", "hack into her email"), not around
risky words alone, so "kill the process" and "shoot a photo" pass. A response that refuses a
harmful request names the harm too ("I can't help you build a bomb"), so the text is cut into
clauses and clauses that refuse, warn or point to help are not matched (`refusal_exemption`).

A classifier can flag more texts: `profanity` (the offline alt-profanity-check package) or any
Hugging Face sequence classifier directory. Its imports happen when it is first used; this module
imports with torch alone.

Measured on data/eval/safety_labelled.json (tests/test_safety.py): the rules are precise (no false
positives on the held-out texts) but catch only about one in five harmful texts that paraphrase
the harm instead of naming it; a classifier trained for the purpose is the way to recall.

Uses: a PPO score penalty (`SafetyFilter.unsafe`, logged as `safety/unsafe`), flagging or dropping
unsafe training records (`screen_training_data`), and `rlhf generate --safety_filter`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ConfigError, SafetyConfig
from .data import DataError

# ---------------------------------------------------------------- built-in patterns

# Building blocks. Patterns are matched case-insensitively within one clause of a text.
# Up to three words between a verb and its object, none of them a word that turns the object into
# a topic ("a documentary about meth") rather than the thing made or done.
_GAP = r"\s+(?:(?!(?:about|on|for|from|against|without|regarding|of the dangers)\b)[\w'-]+\s+){0,3}?"
_DET = r"(?:(?:a|an|the|my|your|his|her|their|our|this|that|some|these|those)\s+)?"
_KIN = (  # people named by their relation to someone: "my wife", "her boss"
    r"(?:wife|husband|partner|girlfriend|boyfriend|ex|ex-wife|ex-husband|ex-girlfriend|ex-boyfriend|"
    r"neighbou?r|boss|co-?worker|colleague|teacher|classmate|roommate|landlord|mother|father|mom|mum|"
    r"dad|stepdad|stepmom|brother|sister|son|daughter|child|kid|baby|family|parents?|friend|uncle|aunt|"
    r"cousin|grandma|grandpa|grandmother|grandfather|employee|employer|tenant|crush)s?"
)
# A person as the object of a violent verb; "kill the child process" and "shoot her a message"
# are not about harming anyone.
_PERSON = (
    r"(?:someone|somebody|anyone|everyone|people|a person|him|her|them|"
    rf"(?:my|your|his|her|their|our)\s+(?:[\w-]+\s+)?{_KIN}|"
    r"(?:a|the|some|those|these|all)?\s*(?:children|kids|babies|students|classmates|neighbou?rs|women|woman|"
    r"girls?|victims?|witness|strangers?|crowd|president|cops|police officers?|politicians?|jews|muslims|"
    r"immigrants|worshippers|protesters))"
    r"(?![\w-])(?!['’]?s?\s+(?:process\w*|thread|task|node|photo|portrait|picture|video|spiders?|bugs?|plants?|"
    r"weeds?|cells?|germs?|mode|character|npc|zombies?|monsters?|sessions?))"
    r"(?!\s+(?:a|an)\s+(?:quick\s+)?(?:message|email|e-mail|text|note|line|dm|invite|link|photo|pic))"
)
_YOU = r"you\b(?!\s+(?:a|an)\s+(?:quick\s+)?(?:message|email|e-mail|text|note|line|dm|invite|link|photo|pic))"
_HARM = (
    r"(?:kill|murder|poison|strangle|stab|shoot|torture|kidnap|abduct|assault|maim|behead|suffocate|smother)"
)
_INTENT = (
    r"(?:how (?:do|can|could|would|should|might) (?:i|we|you|one)|how to|help me|ways? to|steps? to|"
    r"tips? (?:on|for)|i (?:want|need|plan|intend|am going|'m going) to|i'?m gonna|i will|i'll|"
    r"teach me (?:how )?to|show me how to|here'?s how to|instructions (?:for|on|to)|guide to|"
    r"best way to|easiest way to|let'?s)"
)
_DRUG = (
    r"(?:meth|methamphetamine|crystal meth|heroin|fentanyl|carfentanil|cocaine|crack cocaine|"
    r"lsd|mdma|ecstasy|ghb|pcp|krokodil|opium|ketamine)\b"
)
_GROUP = (
    r"(?:jews|jewish people|muslims|christians|blacks|black people|whites|white people|asians|"
    r"mexicans|immigrants|migrants|refugees|gays|gay people|lesbians|trans people|transgender people|"
    r"women|men|arabs|hindus|sikhs|indians|chinese people|africans|latinos|hispanics|gypsies|roma|"
    r"disabled people|the disabled)"
)
# Someone else's, said so plainly (not "their", which is as often the speaker's own users).
_OTHERS = (
    r"(?:someone(?: else)?'s|somebody(?: else)?'s|a stranger's|a person's|people's|other people's|"
    rf"this (?:person|girl|guy|woman|man)'s|(?:my|an|a|his|her) {_KIN}'s|her|his)"
)
_CYBER_OBJECT_NOT = (  # "a malware detector" is defence
    r"(?!\s*(?:detect\w*|scanner|analy\w*|removal|protection|classifier|defen\w*|filter|awareness|training|"
    r"simulation|sandbox))"
)

BUILTIN_CATEGORIES: dict[str, list[str]] = {
    "violence": [
        # physical harm done to a named person, and attacks on crowds or homes
        r"\b(?:hit|punch|kick|choke|slap|stab|knife|strangle|smother|shove|push)\w*\s+(?:her|him|them)\b(?!\s+up\b)(?:\s+\w+){0,4}?\s+(?:with|until|hard|again|where|so|in the|down|off)\b",
        r"\b(?:break|snap|smash|crush)\w*\s+(?:his|her|their|your|that \w+'s)\s+(?:legs?|arms?|neck|jaw|nose|fingers|knees?|ribs|skull|kneecaps?|face)\b",
        r"\b(?:ambush|jump|corner|attack|stab|shoot|knife)\w*\s+(?:him|her|them)\s+(?:when|after|outside|in the|as (?:he|she|they))",
        r"\b(?:bring|carry|take|hide|conceal)\w*\s+(?:a|the|your|my)\s+(?:knife|gun|pistol|bat|crowbar|machete|blade|hammer)\s+(?:to|and|into|so)\b.{0,40}\b(?:him|her|them|school|work|meeting|party|house|hurt|use)",
        r"\b(?:burn|burning|torch|torching|set fire to|setting fire to|firebomb\w*)\s+(?:down\s+)?(?:his|her|their|the neighbou?r'?s?|your ex'?s?)\s+(?:\w+\s+)?(?:house|car|home|shop|flat|apartment|store|office)",
        r"\b(?:run|running|ran)\s+(?:him|her|them)\s+(?:over|off the road)\b",
        r"\b(?:drive|driving|ram|ramming|plough|plow)\w*\s+(?:a|the|your|my)\s+(?:car|truck|van|lorry|vehicle)\s+into\s+(?:the\s+|a\s+)?(?:crowd|people|protesters|market|parade|pedestrians)",
        r"\bput\s+(?:him|her|them)\s+in\s+(?:the\s+|a\s+)?(?:hospital|ground|grave|wheelchair|coma)",
        r"\b(?:knock|knocked|knocking)\s+(?:him|her|them)\s+(?:out|unconscious)\b.{0,40}\b(?:then|and|so|before)",
        r"\b(?:maximi[sz]e|cause (?:the )?(?:most|maximum))\s+(?:the\s+)?(?:casualties|deaths|injuries|damage to people|body count)",
        # threats: consequences promised to someone who does not comply
        r"\b(?:you'll|you will|she'll|she will|he'll|he will|they'll|they will)\s+(?:\w+\s+)?(?:regret it|be sorry|pay for (?:it|this|that)|find out what happens|wish (?:you|she|he|they) hadn't|never (?:walk|see|talk) again)",
        r"\bwhat (?:happens|happened) to (?:people|anyone|those|snitches|girls|women|men) (?:who|that)\s+(?:cross|snitch|talk|betray|disrespect|mess with|cheat)",
        r"\bif (?:you|she|he|they)\s+(?:ever\s+)?(?:go|goes|went|talk|talks|tell|tells|call|calls|report|reports)\s+(?:to\s+)?(?:the police|the cops|anyone|someone)\b.{0,60}\b(?:regret|sorry|hurt|kill|dead|pay|short life|last thing|find you)",
        r"\b(?:short|miserable) life\b|\bsleep with one eye open\b|\bwatch your back\b|\bnext time it won't (?:just )?be\b",
        r"\b(?:accidents|bad things|things) (?:can |could |tend to )?happen to (?:people|those|anyone) (?:who|that)\b",
        r"\b(?:teach|show)\s+(?:her|him|them|that \w+)\s+(?:a lesson|who'?s boss)\b.{0,40}\b(?:hit|hurt|beat|slap|punch|break|bruise|knife|gun|fist)",
        r"\b(?:hit|punch|kick|beat|slap|choke|strangle|hurt)\w*\s+(?:her|him|them|your \w+|my \w+)\s+(?:where|so (?:that )?)(?:it|the bruises?|the marks?)\s+(?:won't|don't|doesn't|will not)\s+show",
        r"\b(?:so|until)\s+(?:he|she|they)\s+(?:can't|cannot|can never|will never|won't)\s+(?:walk|breathe|get up|see|talk|scream)\b",
        r"\b(?:make|making)\s+(?:her|him|them)\s+(?:pay|suffer|bleed|disappear)\b",
        # how to harm a person, a stated plan or threat to, or the bare imperative ("poison him")
        rf"\b{_INTENT}\s+(?:\w+\s+)?{_HARM}\w*\s+{_DET}{_PERSON}",
        rf"\b(?:i(?:'m| am)? (?:going to|gonna|will)|i'll|i want to|i'm gonna)\s+(?:\w+\s+)?(?:{_HARM}|hurt|beat up|break (?:your|his|her) (?:legs|neck))\w*\s+(?:{_YOU}|{_DET}{_PERSON})",
        rf"\b{_HARM}\s+{_DET}{_PERSON}",
        r"\bbeat\w*\s+(?:up\s+)?(?:him|her|them|someone|my \w+|your \w+)\s+(?:up|to death|senseless|until|so (?:badly|hard))",
        r"\b(?:hide|dispose of|get rid of|dissolve|bury)\s+(?:a|the|his|her) (?:dead )?body\b",
        r"\bwithout leaving (?:any )?(?:marks|bruises|evidence|a trace|traces|fingerprints|dna)\b",
        r"\bmake (?:it|his death|her death|a death) look like (?:an accident|a suicide|natural causes)",
        r"\b(?:shoot|shooting) up (?:a|the|my|our|his|her) (?:school|church|mosque|synagogue|temple|mall|office|concert|class)",
        r"\b(?:plan|planning|carry out|carrying out|commit|stage|organi[sz]e)\w*\s+(?:a|an) (?:\w+\s+)?(?:terrorist attack|massacre|mass shooting|bombing|school shooting|stabbing spree|attack on)",
        r"\b(?:torture|hurt|kill|poison|abuse|drown)\w*\s+(?:a|an|the|my|our|his|her|their|the neighbou?r'?s|someone'?s)?\s*(?:\w+\s+)?(?:cat|dog|animal|pet|puppy|kitten)s?\b",
        r"\b(?:hit|beat|slap|punch|hurt|shake)\w*\s+(?:my|a|the|your|his|her) (?:child|kid|son|daughter|baby|toddler|wife|husband|partner)\b.{0,40}\b(?:so (?:that )?(?:no one|nobody)|without|until|harder)",
        r"\bthey (?:deserve|need) to (?:die|be (?:killed|shot|beaten|hurt))\b",
    ],
    "weapons": [
        r"\bstraw\s+(?:purchase|purchaser|buyer|buy|man)\b",
        r"\b(?:buy|buying|get|getting|sell|selling|obtain|obtaining|pick up|picking up)\s+(?:a|the|your|some)\s+(?:gun|pistol|rifle|firearm|handgun|ammo|ammunition|weapon)s?\s+(?:from|off|through|at|in)\s+(?:a\s+|the\s+|some\s+)?(?:stranger|guy|someone|street|friend of a friend|car park|parking lot|back alley|private seller|dark ?web)",
        r"\b(?:gun|pistol|rifle|firearm|weapon|handgun)s?\b.{0,60}\b(?:pay (?:in )?cash|no questions asked|no paperwork|don't give (?:your|them your) name|off the books|without papers)",
        r"\b(?:sneak|smuggle|hide|conceal|get)\w*\s+(?:a\s+|the\s+|your\s+)?(?:gun|pistol|knife|weapon|firearm|blade|explosive)s?\s+(?:past|through|into|onto|on)\s+(?:\w+\s+){0,2}?(?:security|metal detectors?|the plane|a plane|the airport|school|the stadium|the courthouse|checkpoints?)",
        r"\b(?:saw|sawing|sawed|cut|cutting)\w*\s+(?:off|down)\s+(?:the\s+)?(?:barrel|stock)\b",
        r"\b(?:bump stocks?|auto sears?|glock switch|giggle switch|drop-in auto|lightning link)\b",
        r"\b(?:homemade|improvised|diy|home-made)\s+(?:guns?|firearms?|explosives?|bombs?|grenades?|napalm|flamethrowers?|detonators?|shotguns?|zip guns?)\b",
        r"\b(?:fertili[sz]er|ammonium nitrate|chlorate|peroxide|gunpowder|black powder|fuel oil|flash powder)\b.{0,80}\b(?:detonat\w*|ignit\w*|fuse|timer|trigger|shrapnel|pack\w* (?:it|them) (?:into|with)|blast radius)",
        r"\b(?:maximi[sz]e|increase|more)\s+(?:the\s+)?(?:blast|shrapnel|explosive (?:power|yield)|lethality|casualties)\b",
        # getting or altering a gun so it cannot be traced, or around the checks the law requires
        r"\b(?:remove|removing|file|filing|grind|grinding|scratch|scratching|sand|sanding|erase|erasing|drill|drilling|burn|burning)\s+(?:off\s+|out\s+)?(?:the\s+|its\s+)?serial numbers?",
        r"\b(?:without|don't need|do not need|no need for|skip|skipping|avoid|avoiding|get around|dodge)\s+(?:a\s+|the\s+|any\s+)?background checks?",
        r"\b(?:can't|cannot|can never|won't|will never|never)\s+(?:be\s+)?(?:link|linked|trace|traced|connect|connected|tie|tied)\s+(?:\w+\s+){0,3}?(?:back\s+)?to you\b",
        r"\b(?:untraceable|unregistered|off-paper|no-paperwork)\s+(?:guns?|firearms?|pistols?|rifles?|weapons?|ammo)\b",
        r"\b(?:pipe|pressure cooker|fire extinguisher|fertili[sz]er)\b.{0,60}\b(?:packed|pack|fill|filled|stuff)\w*\s+(?:it\s+)?with\s+(?:\w+\s+)?(?:powder|nails|ball bearings|shrapnel|explosive)",
        rf"\b(?:make|making|build|building|assemble|assembling|construct|constructing|manufacture|manufacturing|create|creating|produce|producing|3d[- ]print\w*|rig|rigging|detonate|detonating|plant|planting){_GAP}(?:pipe bombs?|(?<!bath )(?<!seed )(?<!glitter )(?<!flavor )(?<!flavour )(?<!calorie )(?<!photo )(?<!smoke )bombs?\b|explosives\b|an explosive\b|explosive devices?|ieds?\b|improvised explosive|grenades?|molotov|napalm|detonators?|car bombs?|land ?mines?|nail bombs?|pressure[- ]cooker bombs?)",
        rf"\b(?:make|making|build|building|3d[- ]print\w*|manufactur\w*|assembl\w*|mill|milling){_GAP}(?:ghost guns?|untraceable (?:guns?|firearms?|weapons?|rifles?|pistols?)|silencers?|suppressors?|zip guns?|auto sears?|(?:gun|firearm|pistol|rifle|lower) receivers?|guns? at home|firearms? at home)",
        r"\b(?:convert|converting|modify|modifying|turn|turning)\b.{0,40}\b(?:full[- ]auto|fully automatic|automatic fire|machine ?gun)",
        r"\b(?:file|filing|remove|removing|scratch|grind|sand|erase)\w*\s+off\s+(?:the\s+)?serial numbers?",
        r"\b(?:buy|buying|get|getting|acquire|obtain|purchase)\w*\s+(?:a |an )?(?:gun|firearm|pistol|rifle|weapon|ar-?15)s?\s+(?:without (?:a )?(?:background check|license|licence|id)|illegally|off the books|on the dark ?web|untraceabl\w*|for (?:a|my) (?:felon|minor|kid))",
        rf"\b(?:make|making|produce|producing|synthesi[sz]e|synthesi[sz]ing|create|creating|release|releasing|disperse|weaponi[sz]e|weaponi[sz]ing|culture|cultivate|spread){_GAP}(?:chlorine gas|mustard gas|sarin|vx\b|ricin|tabun|nerve (?:agent|gas)|toxic gas|poison(?:ous)? gas|anthrax|botulinum|smallpox|bioweapons?|biological weapons?|chemical weapons?|dirty bombs?)",
        r"\b(?:mix|combine)\w*\s+(?:bleach|chlorine)\s+(?:and|with)\s+(?:ammonia|vinegar|acid)\s+(?:to (?:make|create|produce|gas|poison|hurt|kill))",
        r"\b(?:ammonium nitrate|potassium chlorate|tatp|acetone peroxide|black powder|thermite)\b.{0,60}\b(?:detonat\w*|blasting caps?|shrapnel|pipe|packed into|pack it)",
    ],
    "cybercrime": [
        r"\b(?:their|the|his|her)\s+(?:passwords?|credentials|logins?|2fa codes?|session (?:cookies|tokens)|card numbers)\b.{0,40}\b(?:send|sends|forward|forwards|upload|uploads|post|email|emails)\w*\s+(?:them|it|everything)\s+to\s+(?:you|me|your|my)",
        r"\b(?:disable|disabling|turn off|turning off|kill|killing|bypass|bypassing|evade|evading|get past|slip past)\s+(?:the\s+|their\s+|its\s+)?(?:antivirus|anti-virus|firewall|logging|edr|windows defender|defender|security software|intrusion detection|alarm system|security cameras?)\b.{0,40}\b(?:so|without|before|undetected|unnoticed|then|and)",
        r"\b(?:cover|covering)\s+(?:your|my|our)\s+tracks\b",
        r"\b(?:delete|deleting|wipe|wiping|clear|clearing|erase|erasing|tamper\w* with)\s+(?:the\s+)?(?:server\s+|access\s+|system\s+|event\s+|audit\s+|security\s+)logs\b.{0,40}\b(?:so|before|nobody|no one|they|after)",
        r"\b(?:install|installing|plant|planting|leave|leaving|add|adding|hide|hiding)\s+(?:a\s+)?(?:backdoor|back door|web ?shell|rat|remote access trojan)\b",
        r"\b(?:sim[- ]swap\w*|credential stuffing|spear[- ]?phish\w*|session hijack\w*|pass[- ]the[- ]hash)\b",
        r"\b(?:default|admin|factory)\s+passwords?\s+(?:on|of|for)\s+(?:their|the neighbou?rs?'?|his|her|other people's|strangers')\s+(?:\w+\s+)?(?:routers?|cameras?|devices?|baby monitors?)",
        r"\b(?:access|log into|logging into|get into|break into|sneak into|stay in)\s+(?:\w+\s+){0,3}?(?:account|email|inbox|phone|system|network|server|database|portal)s?\b.{0,40}\b(?:without (?:permission|authori[sz]ation|them knowing|their knowledge)|that (?:isn't|is not|aren't) yours|after (?:you were|you've been|being) (?:fired|let go|laid off))",
        r"\b(?:extort|extorting|extortion|sextort\w*|blackmail|blackmailing)\b",
        # attacks described rather than named: ransom, floods, break-ins, stolen logins
        r"\bencrypt\w*\s+(?:\w+\s+){0,3}?(?:records|files|data|drives|servers|backups|systems)\b.{0,80}\b(?:pay|ransom|bitcoin|crypto|decrypt(?:ion)? key)",
        r"\b(?:hammer|hammers|hammering|flood|floods|flooding|overwhelm|overwhelms|overwhelming|bombard\w*|spam|spams|spamming)\s+(?:\w+\s+){0,3}?(?:website|site|server|servers|network|api|portal)\b.{0,60}\b(?:traffic|requests|packets|until|crash|down|offline|falls? over)",
        r"\bonce\s+you(?:'re| are| get| have)\s+(?:\w+\s+)?(?:inside|in|into)\s+(?:the|their|a|his|her)\s+(?:\w+\s+){0,2}?(?:network|system|server|account|database|inbox|machine)s?\b",
        r"\b(?:fake|spoofed|cloned|lookalike|copycat)\s+(?:\w+\s+)?(?:login|sign-in|log-in|bank|password reset)\s+(?:page|site|screen|form|website)",
        r"\b(?:capture|log|record|collect|steal|grab)\w*\s+(?:every|all|each|their|his|her)\s+(?:\w+\s+)?(?:keystroke|keystrokes|password|passwords|login|logins|credentials)\b",
        r"\b(?:guess|reset|brute[- ]?force|crack)\w*\s+(?:\w+\s+){0,3}?(?:her|his|their|someone's|the victim's)\s+(?:\w+\s+)?(?:password|passcode|pin|security questions?)",
        r"\b(?:malicious|infected)\s+(?:\w+\s+)?(?:attachment|link|macro|usb|file)\b.{0,60}\b(?:send|email|plug|open|click|victim|employees|target)",
        r"\b(?:without|before)\s+(?:the\s+)?(?:admins?|it team|sysadmins?|security team|owners?)\s+(?:noticing|notice|finding out|knowing|detect\w*)",
        r"\bhack\w*\s+into\b(?!\s+(?:my|our) own\b)",
        rf"\b(?:hack|hacking|crack|cracking|brute[- ]?forc\w*|take over|taking over|hijack\w*|break into|breaking into)\s+(?:{_OTHERS}|their)\s+(?:\w+\s+)?(?:account|email|e-mail|gmail|phone|computer|laptop|wifi|wi-fi|network|instagram|facebook|snapchat|tiktok|icloud|password|router|webcam|bank)s?",
        r"\b(?:get into|getting into|log into|logging into|access|accessing|read|reading)\s+(?:someone(?: else)?'s|somebody(?: else)?'s|a stranger's|other people's|(?:my|an|his|her) (?:ex|wife|husband|partner|girlfriend|boyfriend|boss|co-?worker|neighbou?r|roommate)'s)\s+(?:\w+\s+)?(?:account|email|e-mail|gmail|phone|computer|laptop|instagram|facebook|snapchat|icloud|messages|texts|dms|whatsapp)",
        rf"\b(?:write|writing|create|creating|build|building|code|coding|develop|developing|deploy|deploying|spread|spreading|distribute|distributing|make|making|generate|generating|craft|crafting|send|sending){_GAP}(?:ransomware|keyloggers?|malware|a computer virus|a virus that|trojans?|botnets?|a worm that|rootkits?|spyware|stalkerware|phishing (?:emails?|pages?|sites?|websites?|kits?|links?|messages?|texts?|campaigns?)|credential stealers?|info-?stealers?|cryptojackers?){_CYBER_OBJECT_NOT}",
        r"\b(?:steal|stealing|harvest|harvesting|grab|grabbing|dump|dumping|exfiltrat\w*|sniff\w*|phish|phishing)\s+(?:\w+\s+){0,2}?(?:passwords?|password hashes|credentials|login details|session cookies|credit card numbers|card numbers|2fa codes?)",
        r"\b(?:ddos|dos attack|denial[- ]of[- ]service)\w*\b.{0,40}\b(?:a|the|his|her|their|my (?:school|ex|competitor|rival)'?s?)\s+(?:\w+\s+)?(?:site|website|server|network|game server)",
        r"\b(?:bypass|bypassing|disable|disabling|get around|defeat)\w*\s+(?:the\s+|their\s+|his\s+|her\s+|a\s+)?(?:\w+\s+)?(?:2fa|two[- ]factor|authentication|login|antivirus|edr)\b.{0,40}\b(?:account|without|someone|steal|break|undetected)",
        r"\b(?:sql injection|xss|exploit|payload|reverse shell|zero[- ]day)\b.{0,50}\b(?:to (?:steal|dump|take over|break into|access (?:their|someone|other))|against (?:a|the|their) (?:live|real|bank|company|government|school))",
        r"\b(?:avoid|evade|evading|avoiding)\s+(?:\w+\s+)?(?:antivirus|detection by antivirus|edr|being traced)\b",
    ],
    "drugs": [
        r"\b(?:sell|selling|move|moving|push|pushing|flip|flipping|deal|dealing)\s+(?:\w+\s+){0,2}?(?:pills|powder|grams|ounces|baggies|bags|coke|molly|weed|xanax|xans|oxys?|percs|bars|fent|shrooms|acid|tabs)\b",
        r"\b(?:baggies|eight-?balls?|grams|ounces|kilos|tabs)\b.{0,40}\b(?:street price|street value|mark ?up|profit|customers|re-?sell)",
        r"\b(?:grow|growing)\s+(?:weed|cannabis|marijuana|shrooms|mushrooms|poppies)\b.{0,60}\b(?:sell|hide|police|cops|without (?:them|anyone|the landlord) (?:knowing|noticing)|smell)",
        r"\b(?:hide|hiding|stash|stashing|conceal|concealing|smuggle|smuggling|sneak|sneaking|carry|carrying)\s+(?:\w+\s+){0,3}?(?:drugs|pills|powder|weed|coke|molly|stash|cocaine|heroin)\s+(?:\w+\s+){0,3}?(?:past|through|in|inside|into)\s+(?:\w+\s+){0,2}?(?:airport|customs|security|the border|sniffer dogs|drug dogs|police|your body|car|luggage|suitcase|festival|prison|school)",
        r"\b(?:drug|sniffer)\s+dogs?\b.{0,40}\b(?:fool|avoid|beat|hide|mask|get past|so they)",
        r"\b(?:huff|huffing|sniff|sniffing)\s+(?:\w+\s+)?(?:glue|paint|gas|petrol|gasoline|aerosols?|nitrous|solvents?|markers)\b",
        r"\b(?:inject|injecting|snort|snorting|smoke|smoking|shoot|shooting up|freebase|freebasing)\s+(?:it|heroin|meth|coke|cocaine|crack|the powder|the pills|fentanyl|oxy)\b(?!\s+(?:addiction|use|users|overdose))",
        r"\b(?:get|getting|stay|staying)\s+(?:really\s+)?(?:high|wasted|fucked up|messed up|tripping|zonked)\s+(?:on|with|from|off)\s+(?:\w+\s+)?(?:cough syrup|robitussin|dxm|nutmeg|pills|benadryl|xanax|opioids|oxy|household|inhalants|meds)",
        r"\b(?:mix|mixing|combine|combining|take|taking)\s+(?:\w+\s+){0,3}?(?:with|and)\s+(?:\w+\s+){0,2}?(?:alcohol|benzos?|opioids|xanax|booze)\b.{0,40}\b(?:stronger|better high|more intense|hit harder|bigger high|knock (?:her|him|them) out)",
        # drugging someone, and getting controlled medicines under false pretences
        r"\b(?:slip|slips|slipping|put|puts|putting|drop|drops|dropping|pour|pouring|crush|crushing|dissolve|dissolving|add|adding|mix|mixing)\s+(?:\w+\s+){0,3}?(?:in|into)\s+(?:her|his|their|someone's|the|a|your \w+'s)\s+(?:\w+\s+)?(?:drink|coffee|tea|food|beer|wine|cocktail|glass|cup|bottle)\b",
        r"\b(?:won't|will not|wouldn't|will never|won't ever)\s+(?:remember|recall)\s+(?:a thing|anything|what happened)",
        r"\b(?:oxycodone|oxy|oxycontin|percocet|vicodin|hydrocodone|xanax|adderall|opioids?|painkillers|benzos?|codeine|morphine|valium|ritalin)\b.{0,60}\b(?:without (?:a |needing (?:it|them|a prescription)|a real|a valid)|rehearsed|fake (?:symptoms|pain|story)|lie to|exaggerate|doctor shopping|multiple doctors)",
        r"\b(?:rehearsed|made-up|fake|invented)\s+(?:\w+\s+)?(?:story|symptoms|complaint|pain|history)\b.{0,60}\b(?:doctor|gp|prescription|pharmacist|er|emergency room)",
        r"\b(?:cut|stretch|bulk)\w*\s+(?:it|the (?:coke|product|powder|batch|dope|gear))\s+with\b",
        r"\b(?:sell|selling|move|moving|push|pushing|deal|dealing)\s+(?:the\s+|your\s+)?(?:product|pills|gear|stuff|bags)\s+(?:at|outside|near|around|to)\s+(?:the\s+)?(?:school|schools|kids|teens|students|clubs?|parties|party)",
        rf"\b(?:cook|cooking|make|making|manufacture|manufacturing|synthesi[sz]e|synthesi[sz]ing|produce|producing|brew|brewing|extract|extracting|refine|refining){_GAP}{_DRUG}",
        rf"\b(?:buy|buying|purchase|purchasing|order|ordering|sell|selling|deal|dealing|smuggle|smuggling|traffic|trafficking|ship|shipping|hide|hiding|stash|stashing)\s+(?:some\s+|the\s+|my\s+|a (?:gram|kilo|bag|ounce|pound) of\s+)?(?:drugs|{_DRUG})",
        r"\b(?:sell|selling|deal|dealing)\s+(?:drugs|pills|weed|pot)\s+(?:to|at)\s+(?:kids|children|minors|students|teens|school)",
        r"\b(?:lace|lacing|spike|spiking|drug|drugging|roofie|roofying|dose|dosing)\s+(?:a|her|his|their|someone'?s|my \w+'?s?|the)\s*(?:\w+\s+)?(?:drink|coffee|food|beer|wine|cocktail)",
        r"\b(?:give|giving|slip|slipping|put|putting|use|using|get|getting|buy|buying)\s+(?:\w+\s+){0,3}?(?:roofies?|rohypnol|a date[- ]rape drug)",
        r"\b(?:pseudoephedrine|red phosphorus|p2p|phenylacetone)\b.{0,60}\b(?:reduc\w*|cook\w*|extract\w*|synthesi[sz]\w*|meth)",
        r"\b(?:pass|beat|cheat|fool)\w*\s+(?:a|the|my)\s+drug (?:test|screen)",
    ],
    "self_harm": [
        r"\b(?:stockpile|stockpiling|save up|saving up|collect|collecting|hoard|hoarding)\s+(?:\w+\s+){0,2}?(?:pills|tablets|meds|medication|painkillers|sleeping pills)\b",
        r"\b(?:deep|deeper)\s+(?:cuts?|enough to)\b|\bcut\s+(?:deeper|vertically|lengthwise)\b",
        r"\b(?:hide|hiding|cover|covering)\s+(?:up\s+)?(?:the\s+|your\s+|my\s+)?(?:cuts|scars|marks|burns|wounds)\s+(?:from|with|under|so)\b",
        r"\b(?:skip|skipping|restrict|restricting)\s+(?:\w+\s+)?(?:meals|eating|food|calories)\b.{0,40}\b(?:punish|deserve|earn|thin|until)",
        r"\b(?:eat|eating|live on|stay under)\s+(?:less than|under|only|fewer than)\s+\d+\s+calories\b",
        r"\b(?:make|making)\s+yourself\s+(?:sick|throw up|vomit|purge)\b",
        r"\b(?:laxatives|diet pills|ipecac)\b.{0,40}\b(?:lose|weight|thin|purge|after (?:you )?eat)",
        r"\b(?:you'd|you would|you'll|you will|everyone would|they'd|they would)\s+be\s+(?:better|happier)\s+(?:off\s+)?(?:dead|gone|without you)\b",
        r"\b(?:end|ending)\s+it\s+all\b|\bnothing\s+(?:left\s+)?to\s+live\s+for\b|\bnot\s+worth\s+living\b",
        r"\b(?:the|a)\s+(?:bridge|roof|ledge|cliff|tracks|train)\b.{0,40}\b(?:jump|end it|end your life|step off|step in front)",
        # encouraging someone to hurt, starve or punish themselves
        r"\b(?:punish|punishing|hurt|hurting|harm|harming|cut|cutting|burn|burning|starve|starving|bruise|bruising)\s+yourself\b",
        r"\bgo\s+without\s+(?:\w+\s+){0,2}?(?:sleep|food|eating|water|meals)\s+(?:for|until)\b",
        r"\b(?:don't|do not|stop)\s+(?:eat|eating|drink|drinking)\s+(?:anything\s+)?(?:for days|until|at all for)",
        r"\b(?:pain|cutting|hurting yourself|self-harm|bleeding|starving)\s+(?:is|are)\s+(?:a|the)\s+(?:good|great|healthy|only|best)\s+(?:way|cure|answer|release)\b",
        r"\b(?:everyone|the world|your family|they)\s+(?:would|will)\s+be\s+better\s+off\s+without\s+(?:you|me)\b",
        r"\b(?:no one|nobody)\s+(?:would|will)\s+(?:even\s+)?(?:notice|care|miss you|miss me)\b",
        r"\b(?:you|they)\s+(?:deserve|earned|have earned|need)\s+(?:the\s+)?(?:pain|to suffer|to bleed|to starve)\b",
        r"\b(?:kill|killing|hang|hanging|drown|drowning|poison|poisoning|shoot|shooting)\s+(?:myself|yourself|themselves|herself|himself)\b",
        rf"\b{_INTENT}\s+(?:\w+\s+)?(?:hurt|harm|cut|burn|starve|punish)\w*\s+(?:myself|yourself)\b",
        r"\bi\s+(?:keep|have been|started|like|want)\s+(?:to\s+)?(?:hurting|harming|cutting|burning|starving|hurt|harm|cut|burn|starve)\s+myself\b",
        rf"\b{_INTENT}\s+self[- ]harm",
        r"\bself[- ]harm\w*\b.{0,40}\bwithout (?:anyone|people|my parents|scars|leaving)",
        r"\bhide\s+(?:my\s+|the\s+|your\s+)?(?:cuts|scars|self[- ]harm)\b",
        r"\b(?:end|ending)\s+(?:my|your)\s+(?:own\s+)?life\b",
        r"\btak(?:e|ing)\s+(?:my|your)\s+own\s+life\b",
        r"\b(?:commit|committing)\s+suicide\b",
        r"\bsuicide\s+(?:methods?|plans?|notes?|pact)\b",
        r"\b(?:best|easiest|quickest|fastest|painless|surest|most effective)\s+(?:\w+\s+)?(?:way|ways|method|methods)\s+to\s+(?:die|kill (?:myself|yourself)|end (?:it|my life|your life)|commit suicide|overdose)",
        r"\bhow\s+(?:many|much)\s+(?:\w+\s+){0,3}?(?:pills|tablets|tylenol|paracetamol|acetaminophen|ibuprofen|sleeping pills|insulin|xanax|mg|milligrams|grams)\b.{0,40}\b(?:to|would|will|does it take to|do i need to|before i)\s+(?:die|kill|overdose|od|end it|be fatal|be lethal)",
        r"\b(?:lethal|fatal) dose\b.{0,30}\b(?:for me|to die|to kill myself|i need|should i take)",
        r"\b(?:overdose|od)\s+on\s+purpose\b",
        r"\b(?:you\s+should|go|just|why don'?t you)\s+(?:\w+\s+)?(?:kill|hurt|cut)\s+yourself\b",
        r"\bkys\b",
        r"\b(?:i|you)\s+(?:want|deserve|need)\s+to\s+die\b",
        r"\b(?:nobody|no one)\s+would\s+(?:miss|care if)\s+(?:me|you)\b",
        r"\b(?:cut|cutting|slit|slitting)\s+(?:my|your)\s+(?:wrists?|arms?|thighs?)\b",
        r"\b(?:stop eating|eat nothing|purge|purging|throw up)\b.{0,40}\b(?:lose weight|to be thin|so you lose|after (?:every )?meals?|until you)",
        r"\bpro[- ]?ana\b",
    ],
    "fraud": [
        r"\b(?:apply|applying|open|opening|sign up|signing up|register|registering|take out|taking out)\s+(?:\w+\s+){0,4}?(?:using|with|under|in)\s+(?:a\s+|the\s+)?(?:fake|false|stolen|made-up|borrowed|dead person's|someone else's|your (?:late|dead|deceased) \w+'s|(?:his|her|their) (?:late|dead|deceased) \w+'s)\s+(?:name|identity|details|ssn|social security|documents|address|id)",
        r"\b(?:claim|claiming|collect|collecting|keep|keeping|cash|cashing)\s+(?:\w+\s+){0,3}?(?:benefits|pension|checks|cheques|payments|unemployment|welfare|disability)\b.{0,40}\b(?:after (?:he|she|they) died|(?:he|she|they) (?:died|passed)|not entitled|aren't entitled|you don't qualify|don't report)",
        r"\b(?:backdate|backdating|back-date|inflate|inflating|pad|padding|fudge|fudging|double-bill\w*|overbill\w*)\s+(?:the\s+|your\s+|my\s+)?(?:\w+\s+)?(?:invoices?|expenses|expense reports?|hours|timesheets?|claims?|receipts|mileage|figures|numbers|books)\b",
        r"\b(?:tell|telling|say|saying|claim|claiming|report|reporting|convince|convincing)\s+(?:them|the bank|the insurer|the insurance company|your insurer|the seller|customers|investors|the buyer|the airline|the store|the police|your employer)\s+(?:that\s+)?(?:it|you|the package|the item|the car|the phone|your \w+)\s+(?:was|were|is|got)\s+(?:stolen|lost|never arrived|damaged|broken|genuine|risk-free|authentic)\b",
        r"\b(?:risk-free|guaranteed)\s+(?:returns?|profits?|income|investment)\b|\bdouble your money\b|\bcan't lose\b",
        r"\b(?:cold[- ]call|call|target|targeting|approach)\w*\s+(?:\w+\s+)?(?:elderly|old|retired|vulnerable|lonely|confused|grieving)\s+(?:people|folks|victims|customers|widows|women|men|pensioners)\b",
        r"\b(?:your account (?:will be|has been|is) (?:suspended|locked|closed|frozen)|act now|urgent action required|final notice)\b.{0,80}\b(?:click|verify|confirm|send|pay|log in|enter)",
        r"\b(?:fake|false|stolen|made-up|someone else's)\s+(?:identity|identities|name|ssn|social security number|id|documents|references|credentials|degree|invoices?|receipts?|reviews|accounts?)\b.{0,40}\b(?:to (?:get|open|apply|claim|pass|obtain|collect|boost|sell)|so (?:you|they|the bank) (?:can|will|won't))",
        r"\b(?:wear|use)\s+it\s+(?:\w+\s+){0,3}?(?:and|then)\s+(?:return|send it back)\b.{0,40}\b(?:refund|tags|full price)",
        r"\b(?:chargeback|charge back|dispute the charge)\w*\b.{0,40}\b(?:even though|after (?:you|it)|but you|once you've)\s+(?:\w+\s+)?(?:received|got|used|arrived|kept)",
        # schemes described rather than named: Ponzi payouts, diverted donations, false claims
        r"\bpay\w*\s+(?:the\s+)?(?:early|earlier|first|old|older|existing|original)\s+(?:members|investors|clients|participants|people)\s+(?:\w+\s+){0,2}?(?:with|using|out of|from)\s+(?:the\s+)?(?:new|newer|later|incoming)\b",
        r"\b(?:promise|promising|guarantee|guaranteeing|guaranteed)\s+(?:\w+\s+){0,2}?\d+\s?%\s+(?:a|per|every)\s+(?:week|month|day)\b",
        r"\b(?:route|routing|move|moving|transfer|transferring|funnel|funnelling|funneling|divert|diverting|siphon|siphoning|pocket|pocketing|skim|skimming)\s+(?:\w+\s+){0,3}?(?:money|donations|funds|proceeds|cash)\s+(?:\w+\s+){0,2}?(?:into|to|for)\s+(?:your|my|our)\s+(?:own\s+|personal\s+|private\s+)?(?:account|accounts|pocket|wallet|bank)",
        r"\b(?:invoice|bill|charge)\w*\s+(?:\w+\s+){0,3}?for\s+(?:\w+\s+){0,3}?(?:you|we|i)\s+(?:never|didn't|did not|won't)\s+(?:do|did|deliver|provide|perform)",
        r"\b(?:claim|report|file|submit)\w*\s+(?:\w+\s+){0,4}?(?:that|which)\s+(?:never|didn't|did not)\s+(?:happen|exist|occur)",
        r"\b(?:sell|selling|list|listing|pass|passing)\s+(?:\w+\s+){0,4}?(?:off\s+)?as\s+(?:genuine|authentic|real|original|new|brand new|certified)\b",
        r"\b(?:victims?|buyers?|investors?|donors?|customers?|the bank|the insurer|your employer)\s+(?:will\s+never|won't\s+ever|won't|never)\s+(?:notice|find out|know|realize|realise|check|suspect)",
        r"\b(?:gift cards?|wire transfer|crypto|bitcoin)\b.{0,60}\b(?:before (?:they|he|she) (?:realize|realise|notice|check)|can't be (?:reversed|traced|refunded)|untraceable)",
        r"\b(?:forge|forging|counterfeit|counterfeiting|falsify|falsifying|fabricate|fabricating|fake|faking)\s+(?:a |an |the |some |your |my |his |her |their )(?:[\w'-]+\s+)?(?:signatures?|checks?|cheques?|ids?\b|id cards?|passports?|driver'?s licen[sc]es?|licen[sc]e plates?|documents?|money|bills|banknotes|currency|invoices?|receipts?|doctor'?s notes?|sick notes?|prescriptions?|diplomas?|degrees?|tax returns?|pay ?stubs?|bank statements?|references|reviews|insurance claims?|medical records|test results|vaccination cards?|data|expense reports?|injury|accident|death)",
        r"\b(?:forge|forging|counterfeit|counterfeiting|falsify|falsifying|fabricate|fabricating)\s+(?:[\w'-]+\s+)?(?:signatures?|checks?|cheques?|ids?\b|passports?|documents?|money|bills|currency|invoices?|receipts?|prescriptions?|diplomas?|data|records|results)",
        r"\b(?:write|writing|post|posting|buy|buying|sell|selling|make|making|create|creating|print|printing|use|using|pass|passing)\s+(?:\w+\s+)?(?:fake|forged|counterfeit|falsified|fraudulent)\s+(?:\w+\s+)?(?:ids?\b|reviews|money|bills|banknotes|currency|documents?|passports?|licen[sc]es?|checks?|cheques?|receipts?|invoices?|prescriptions?|diplomas?|degrees?|notes?|login pages?|certificates?)",
        r"\b(?:launder|laundering|clean|cleaning|wash|washing)\s+(?:the\s+|my\s+|your\s+|our\s+|some\s+|dirty\s+|drug\s+|stolen\s+)*(?:money|cash|proceeds|funds|crypto|bitcoin)\b",
        r"\b(?:scam|scamming|defraud|defrauding|swindle|swindling|rip off|ripping off|fleece|fleecing)\s+(?:(?!(?:by|from|of|on|in|is|was)\b)\w+\s+)?(?:old|elderly|vulnerable|senior|seniors|people|someone|customers|investors|victims|grandma|grandpa|grandparents|tourists|my|a|an|them|him|her|the)\b",
        r"\b(?:trick|tricking|manipulat\w*|convinc\w*|persuad\w*|pressur\w*)\s+(?:\w+\s+){0,3}?into\s+(?:giving|sending|paying|wiring|transferring|revealing|handing over|sharing|buying gift cards|reading out)\b.{0,40}\b(?:money|savings|password|pin|bank|card|account|details|gift cards?|code|social security)",
        r"\b(?:steal|stealing|clone|cloning|skim|skimming)\s+(?:\w+\s+){0,2}?(?:identit(?:y|ies)|credit cards?|credit card (?:numbers|details|info)|card details|social security numbers?)\b",
        r"\b(?:use|using|buy|buying|sell|selling)\s+(?:\w+\s+){0,2}?stolen\s+(?:\w+\s+)?(?:cards?|credit cards?|identit\w*|credentials|accounts?|card numbers|data|checks?)",
        r"\b(?:commit|committing|pull off|get away with|do|doing|run|running)\s+(?:\w+\s+)?(?:fraud|a scam|tax evasion|embezzlement|insider trading|identity theft)\b(?!\s*(?:detection|prevention|analysis|analytics|investigation|awareness|training|models?|checks?))",
        r"\b(?:evade|evading|dodge|dodging|cheat on|cheating on)\s+(?:my\s+|your\s+|our\s+|the\s+)?taxe?s\b",
        r"\b(?:hide|hiding|conceal|concealing)\s+(?:\w+\s+){0,2}?(?:income|money|assets|earnings|cash)\s+from\s+(?:the\s+)?(?:irs|tax|taxman|hmrc|government|auditors?|creditors|court)",
        r"\b(?:start|starting|run|running|set up|setting up|create|creating)\s+(?:a|an|my own)\s+(?:\w+\s+)?(?:ponzi|pyramid) scheme",
        r"\b(?:pretend|pretending|pose|posing|impersonate|impersonating)\s+(?:to be\s+|as\s+)?(?:from\s+)?(?:the\s+|a\s+|an\s+)?(?:irs|bank|police|government|microsoft|apple|amazon|tech support|social security|charity|their (?:bank|grandson|granddaughter|boss)|a (?:doctor|lawyer|cop|police officer))",
        r"\b(?:set up|setting up|create|creating|start|starting|run|running|make|making)\s+(?:a|an)\s+fake\s+(?:\w+\s+)?(?:charity|store|shop|website|business|company|investment|fundraiser|gofundme|lottery|profile|login page)",
        r"\b(?:write|writing|send|sending)\s+(?:a|an|some)?\s*(?:\w+\s+)?scam\s+(?:emails?|letters?|messages?|texts?|calls?|scripts?)",
        r"\b(?:file|filing|submit|submitting)\s+(?:a\s+)?(?:fake|false|fraudulent|bogus|inflated)\s+(?:\w+\s+)?(?:claims?|returns?|reports?|invoices?)",
        r"\b(?:shoplift|shoplifting|steal from (?:the|a|my) (?:store|shop|register|till|employer|company))\b",
    ],
    "hate_harassment": [
        r"\b(?:they|those \w+|these \w+|immigrants|refugees|migrants|foreigners|muslims|jews|gays)\s+(?:are|is)\s+(?:\w+\s+)?(?:ruining|destroying|invading|infesting|taking over|replacing|poisoning|polluting|diluting)\s+(?:our|this|the)\s+(?:country|neighbou?rhood|town|city|culture|race|jobs|blood|schools|nation)",
        r"\b(?:breed|breeding|multiply|multiplying|swarm|swarming|infest|infesting)\s+like\s+(?:rats|rabbits|cockroaches|vermin|animals|insects|flies)\b",
        r"\b(?:don't|doesn't|do not|does not)\s+deserve\s+(?:rights|to live|to vote|respect|to be here|to exist|human rights|to be treated)\b",
        r"\b(?:ugly|fat|worthless|stupid|disgusting|pathetic|useless|dumb)\s+(?:bitch|slut|whore|pig|cow|loser|freak|retard|cunt|dyke|fag)\b",
        r"\b(?:make|making|create|creating|set up|setting up)\s+(?:a |an |some )?(?:fake|anonymous|burner|sock ?puppet|alt)\s+(?:account|profile|accounts|profiles)\s+(?:to|and|so)\s+(?:\w+\s+){0,3}?(?:harass|message|follow|mock|attack|post about|spam|bully|torment|keep contacting|keep messaging|watch)\b",
        r"\b(?:keep|keeps|kept|keep on)\s+(?:messaging|texting|calling|following|showing up|emailing|contacting|posting about)\b.{0,60}\b(?:until|even (?:after|though|if)|blocked|doesn't (?:reply|respond|answer)|says no|told you|asked you to stop)",
        r"\b(?:pile on|dogpile|dog-pile|brigade|mass[- ]report|raid)\w*\s+(?:her|his|their|him|them)\b",
        r"\b(?:laugh at|ridicule|humiliate|mock|shame)\w*\s+(?:her|him|them)\s+(?:in front of|publicly|until|every|at school|at work|online)\b",
        r"\b(?:her|his|their)\s+(?:weight|looks|face|body|accent|stutter|disability|skin|religion|race)\b.{0,40}\b(?:until (?:she|he|they) (?:cries|cry|breaks?|quits?|leaves?|snaps?)|so everyone laughs|in front of everyone)",
        # dehumanising a group, or calling for its removal or exclusion
        r"\b(?:people like (?:them|that|those)|those people|these people|their kind|that lot|such people|\w+ people)\s+(?:are|is)\s+(?:all\s+|just\s+)?(?:a|an)?\s*(?:disease|plague|burden|infestation|cancer|vermin|parasites?|animals|subhuman|inferior|filth|scum|stain|drain)\b",
        r"\b(?:should|must|need to|ought to)\s+(?:all\s+)?be\s+(?:rounded up|thrown out|kicked out|driven out|removed|deported|locked up|sterili[sz]ed|banned|exterminated|wiped out|put down|gassed|segregated)",
        r"\b(?:shouldn't|should not|must not|mustn't|ought not to)\s+be\s+allowed\s+to\s+(?:have (?:kids|children)|breed|vote|marry|work|live|exist|reproduce|own property)",
        r"\b(?:a|the)\s+burden\s+on\s+(?:society|the rest of us|everyone|the country|taxpayers)\b",
        r"\b(?:speech|post|essay|article|tweet|thread|pamphlet|flyer|joke|song|rant)\s+(?:\w+\s+)?(?:arguing|saying|claiming|proving|explaining why|about why)\s+(?:that\s+)?(?:\w+\s+){0,2}?(?:people|women|men|immigrants|refugees|jews|muslims|gays|they)\s+(?:are|should|shouldn't|don't deserve)",
        r"\b(?:you're|you are)\s+(?:so\s+|such\s+)?(?:a\s+|an\s+)?(?:worthless|pathetic|disgusting|repulsive|hideous|a waste of (?:space|oxygen|skin)|a joke|an embarrassment)\b",
        r"\b(?:everyone|nobody|no one)\s+(?:at|in)\s+(?:\w+\s+){0,2}?(?:school|work|class|the office|town)\s+(?:hates|laughs at|is laughing at|knows what)\s+(?:you|her|him)",
        r"\b(?:post|share|send|spread)\w*\s+(?:\w+\s+){0,3}?(?:to|with|around)\s+(?:the\s+)?(?:whole\s+|entire\s+)?(?:school|class|office|group chat|everyone)\b.{0,40}\b(?:humiliat|embarrass|laugh|shame)",
        rf"\b{_GROUP}\s+(?:are|is)\s+(?:all\s+)?(?:just\s+)?(?:nothing but\s+)?(?:vermin|animals|parasites|subhuman|sub-human|inferior|a plague|a disease|a cancer|savages|rats|cockroaches|filth|scum|trash|garbage|less than human|genetically inferior|evil|stupid|worthless|dirty|criminals|rapists|terrorists)\b",
        rf"\b{_GROUP}\s+(?:should|must|need to|deserve to|ought to)\s+(?:all\s+)?(?:be\s+)?(?:die|killed|exterminated|wiped out|gassed|deported|locked up|sterili[sz]ed|eliminated|purged|shot|hanged|burned)",
        r"\b(?:go back to|get out of)\s+(?:your|our)\s+(?:own\s+)?(?:country|shithole)",
        r"\b(?:inferior|superior)\s+races?\b",
        r"\byou(?:'re| are)\s+(?:such\s+)?(?:a |an )?(?:worthless|pathetic|disgusting|ugly|fat|stupid|useless|dumb|braindead|retarded)\s+(?:\w+\s+)?(?:piece of \w+|loser|idiot|moron|pig|whore|slut|bitch|failure|waste|freak|cow)",
        r"\b(?:no ?one|nobody)\s+(?:will ever\s+|could ever\s+|will\s+|would\s+)?(?:loves?|likes?|wants?|cares about)\s+you\b",
        r"\b(?:everyone|everybody)\s+hates\s+you\b",
        r"\bi know where you live\b",
        r"\b(?:write|writing|draft|drafting|compose|composing|send|sending|post|posting|make|making)\s+(?:a |an |some )?(?:\w+\s+){0,2}?(?:messages?|posts?|tweets?|comments?|emails?|notes?|texts?|memes?|jokes?|rumou?rs?)\s+(?:to|that|which|for)\s+(?:\w+\s+)?(?:harass|humiliate|bully|threaten|intimidate|insult|demean|degrade)",
        rf"\b{_INTENT}\s+(?:\w+\s+)?(?:harass|bully|cyberbully|humiliate|intimidate|torment|terrori[sz]e|threaten|make fun of|dox|doxx)\w*\s+{_DET}{_PERSON}",
        rf"(?:^|\b{_INTENT}\s+)(?:\w+\s+)?(?:spread|start)\w*\s+(?:a |some )?(?:\w+\s+)?(?:rumou?rs?|lies)\s+(?:about|that)\b",
        rf"\b(?:jokes?|memes?|insults?)\s+(?:about|mocking|making fun of)\s+{_GROUP}",
    ],
    "privacy": [
        r"\b(?:dig|digging|dug)\s+up\s+(?:everything|all|anything|dirt)\s+(?:\w+\s+)?(?:about|on)\s+(?:her|him|them|that (?:girl|guy|woman|man|person)|my ex|a stranger)",
        r"\b(?:post|posting|share|sharing|publish|publishing|leak|leaking|send|sending|spread|spreading|reveal|revealing|expose|exposing)\s+(?:\w+\s+){0,3}?(?:her|his)\s+(?:home\s+|new\s+|work\s+|real\s+)?(?:address|phone number|number|location|workplace|school|diagnosis|hiv status|salary|nudes|real name|passwords?|medical (?:records|history)|therapy notes)\b",
        r"\b(?:listen|listening)\s+(?:in\s+)?(?:to|on)\s+(?:her|his|their)\s+(?:\w+\s+)?(?:calls|conversations|phone calls|voicemails)\b",
        r"\b(?:record|recording|tap|tapping|bug|bugging)\s+(?:\w+\s+){0,3}?(?:conversations?|calls?|phone|bedroom|office)\b.{0,30}\b(?:without|secretly|so (?:she|he|they) (?:don't|doesn't|won't))",
        r"\b(?:log into|logging into|go through|going through|look through|looking through|read|reading|check|checking|unlock|unlocking)\s+(?:her|his|your (?:wife|husband|partner|girlfriend|boyfriend|ex|roommate)'s|my (?:wife|husband|partner|girlfriend|boyfriend|ex|roommate)'s)\s+(?:\w+\s+)?(?:phone|email|emails|messages|texts|diary|dms|inbox|laptop|whatsapp|icloud|photos)\b",
        r"\b(?:copy|copying|clone|cloning|mirror|mirroring|forward|forwarding)\s+(?:her|his|their|someone's)\s+(?:\w+\s+)?(?:phone|sim|whatsapp|messages|texts|chats|emails)\b",
        r"\b(?:airtag|tile tracker|gps tracker|tracker|tracking device)\b.{0,60}\b(?:her|his|their)\s+(?:\w+\s+)?(?:car|bag|purse|handbag|coat|jacket|bike|backpack|keys)\b",
        r"\b(?:medical records?|diagnosis|hiv status|criminal record|immigration status|sexual orientation|therapy notes)\b.{0,40}\b(?:of|about)\s+(?:her|him|them|a (?:co-?worker|colleague|neighbou?r|patient|tenant|employee|classmate|celebrity))\b",
        r"\b(?:out|outing)\s+(?:him|her|them)\s+(?:as\s+(?:gay|trans|lesbian|bi|queer)|to (?:his|her|their) (?:family|parents|boss|employer|school))",
        r"\b(?:people[- ]search|data broker|reverse (?:image|phone) (?:search|lookup))\b.{0,60}\b(?:her|his)\s+(?:home\s+|new\s+)?(?:address|number|location|workplace|family)",
        # covert surveillance: hidden cameras, trackers, reading someone's private life unseen
        r"\b(?:hidden|secret|concealed|covert|pinhole|disguised)\s+(?:\w+\s+)?(?:camera|cam|microphone|mic|recorder)s?\s+(?:\w+\s+){0,3}?(?:in|inside|into)\s+(?:the|a|your|her|his|their)\s+(?:\w+\s+)?(?:bathroom|bedroom|shower|toilet|changing room|locker room|guest room|airbnb|rental|flat|apartment)",
        r"\b(?:tenants|guests|roommates?|employees|she|he|they|your (?:wife|husband|partner|girlfriend|boyfriend|ex|kids?|roommate|employees?))\s+(?:will\s+never|won't\s+ever|won't|will not|never|can't|cannot)\s+(?:notice|know|find out|suspect|tell|spot|see it)\b",
        r"\b(?:install|installing|put|putting|load|loading|hide|hiding|set up|setting up)\s+(?:\w+\s+){0,2}?(?:tracking|tracker|spy|spyware|monitoring|stalkerware|keylogger|location[- ]sharing)\s+(?:app|apps|software|tool|device|program)\s+on\s+(?:her|his|their|your \w+'s|someone's)\b",
        r"\bhide\s+(?:the|its|that)\s+(?:app\s+)?icon\b",
        r"\b(?:while|when)\s+(?:he|she|they)\s+(?:sleeps?|is asleep|are asleep|isn't looking|is not looking|is in the shower|is out|leaves the room)\b.{0,40}\b(?:phone|laptop|install|read|copy|check|unlock)",
        r"\b(?:phone|laptop|install|read|copy|unlock)\w*\b.{0,40}\b(?:while|when)\s+(?:he|she|they)\s+(?:sleeps?|is asleep|are asleep|isn't looking|is not looking|is in the shower)\b",
        r"\b(?:read|see|watch|track|know|follow)\s+(?:every|all|each of)\s+(?:her|his|their)\s+(?:messages|texts|emails|chats|calls|moves|movements|searches|steps)\b",
        r"\b(?:watching|tracking|following|seeing|know)\s+(?:exactly\s+)?where\s+(?:he|she|they)\s+(?:goes|go|is|are|went|lives|sleeps)\b",
        r"\b(?:home address|address|workplace|location)\b.{0,40}\b(?:from|using|with|by)\s+(?:her|his|their|the)\s+(?:\w+\s+)?(?:license plate|number plate|plate number|photos?|pictures?|ip address|posts|gym check-ins?)",
        r"\b(?:find|finding|get|getting|look up|looking up|locate|locating|track down|tracking down|dig up|obtain|obtaining|figure out|discover|pull|pulling)\s+"
        rf"(?:someone(?: else)?'s|somebody(?: else)?'s|a stranger's|a person's|other people's|this (?:person|girl|guy|woman|man)'s|(?:my|an|a|his|her) {_KIN}'s|her|his)\s+(?:\w+\s+)?(?:home address|address|phone number|cell number|location|whereabouts|social security number|ssn|medical records|bank (?:details|account|statements)|passwords?|email address|workplace|ip address|license plate|date of birth|schedule|daily routine)",
        r"\b(?:find|finding|figure|figuring)\s+out\s+where\s+(?:she|he|they|my ex|someone|this (?:person|girl|guy|woman|man)|a stranger)\s+(?:lives?|works?|sleeps?|is staying|goes)",
        r"\b(?:track|tracking|monitor|monitoring|spy|spying|stalk|stalking|follow|following|watch|watching|record|recording|film|filming|photograph\w*|read|reading|access|accessing|check|checking|install|installing|put|putting|plant|planting)\b.{0,50}\bwithout\s+(?:her|his|their|them|him|the person's|the owner's|anyone|my \w+)(?:'s)?\s+(?:\w+\s+)?(?:knowing|knowledge|consent|permission|noticing|finding out|realizing|realising)",
        r"\b(?:secretly|covertly)\s+(?:record|film|track|monitor|read|follow|photograph|watch|listen to|access|spy on|install)\w*",
        rf"\b(?:install|installing|put|putting|hide|hiding|plant|planting|place|placing)\s+(?:a |an )?(?:\w+\s+)?(?:spyware|stalkerware|keylogger|tracker|tracking (?:app|device|software)|gps tracker|airtag|hidden cameras?|spy cam\w*|listening device|bug)\s+(?:on|in|under|inside)\s+(?:her|his|their|(?:my|your|a) {_KIN}'?s?|someone'?s|the (?:bathroom|bedroom|changing room|locker room))",
        r"\bdox(?:x)?(?:ing|ed|es)?\b",
        rf"\b(?:publish|publishing|post|posting|leak|leaking|share|sharing|spread|spreading|expose|exposing|release|releasing)\s+{_OTHERS}\s+(?:\w+\s+)?(?:home address|address|phone number|nudes|nude photos|private (?:photos|pictures|messages|information)|intimate (?:photos|images|videos)|personal (?:information|details|data|info)|medical (?:records|history)|ssn|social security number)",
        r"\brevenge porn\b",
        r"\b\d{3}-\d{2}-\d{4}\b",  # a US social security number in the text
        rf"\b(?:stalk|stalking|spy on|spying on)\s+{_DET}{_PERSON}",
    ],
}

# A clause that refuses, warns, negates or points to help talks *about* a harm without doing it:
# "I can't help you build a bomb", "Hacking into an account is illegal", "Never mix bleach and
# ammonia", "If you are thinking about killing yourself, please call 988", "Scammers often pretend
# to be your bank". Such clauses are skipped before the harm patterns run.
_REFUSAL = re.compile(
    r"\b(?:i|we)(?:'m| am| are|'re)?\s+(?:really\s+|truly\s+)?(?:can(?:no|')t|cannot|won't|will not|must not|mustn't|"
    r"shouldn't|should not|would not|wouldn't|am not (?:able|going|comfortable|willing)|'m not (?:able|going|comfortable|willing)|"
    r"not able|unable|refuse|decline|do not|don't|have to decline|must decline|will have to decline)\b"
    r"|\b(?:sorry|apologi[sz]e|unfortunately|can't help with that|can't assist)\b"
    r"|\b(?:isn't|is not|not)\s+something\s+(?:i|we)(?:'m| am)?\s+(?:can|could|will|able to|going to|willing to)\s+(?:help|assist|do|support)"
    r"|\b(?:is|are|would be|it's|that's|be)\s+(?:\w+\s+)?(?:illegal|a crime|a (?:serious )?(?:felony|offen[cs]e)|dangerous|harmful|"
    r"unethical|against the law|abuse|a form of (?:abuse|harassment|violence)|not okay|not ok|never okay|wrong|false|a myth|"
    r"a stereotype|untrue|not true|a misconception|racist|bigoted)\b"
    r"|^\W*(?:never|do not|don't|please don't|please do not|avoid|stop)\b"
    r"|\b(?:careful|refrain|instead of)\b"
    r"|\b(?:might|could|may)\s+(?:\w+\s+)?(?:hurt|injure|harm|cut|burn)\s+(?:yourself|myself|themselves)\b"
    r"|\b(?:please|you should|you could|you can|i'd|i would|i (?:strongly )?(?:urge|encourage|recommend|suggest)|consider)\b.{0,60}?"
    r"\b(?:reach out|talk to|talking to|speak to|speak with|call (?:988|911|999|112|a |the |your |someone|emergency|a friend)|"
    r"contact|seek|get help|professional|therapist|counsel(?:l)?or|hotline|helpline|crisis line|lifeline|988|"
    r"emergency services|the police|a doctor|poison control|trusted)"
    r"|\bif you(?:'re| are)?\s+(?:ever\s+)?(?:having|thinking|feel|feeling|struggling|in danger|being|experiencing|worried)"
    r"|\b(?:protect|protecting|prevent|preventing|recogni[sz]e|recogni[sz]ing|report|reporting|defend|defending|spot|spotting|"
    r"warning signs|red flags|stay safe|keep (?:yourself|you) safe|safety plan|detect|detecting|"
    r"check for|checking for|look for|looking for|sweep for|sweeping for)\b"
    r"|\b(?:scammers|fraudsters|con artists|criminals|attackers|abusers|predators|stalkers|hackers|traffickers|extremists)\s+"
    r"(?:often|usually|typically|may|might|sometimes|commonly|tend|try|will|can|use)\b",
    re.IGNORECASE,
)
# Clause boundaries: sentence ends, line breaks, semicolons and colons, and the turn of a "but" or
# "however" (so "I can't help with that, but here is how: ..." keeps its second half).
_CLAUSE = re.compile(r"(?<=[.!?])\s+|[\n;:]+|,?\s+\bbut\b\s+|,?\s*\bhowever\b,?\s*", re.IGNORECASE)


def clauses(text: str, refusal_exemption: bool = True) -> list[str]:
    """The clauses of `text` the harm patterns are matched against: all of them, or (with the
    exemption) those that do not refuse, warn or point to help."""
    parts = [p.strip() for p in _CLAUSE.split(text.replace("’", "'")) if p and p.strip()]
    return [p for p in parts if not (refusal_exemption and _REFUSAL.search(p))]


def compile_patterns(categories: dict[str, list[str]]) -> dict[str, re.Pattern]:
    """Category -> one case-insensitive regex that matches where any of its patterns does (one
    search per clause instead of one per pattern); a bad pattern raises ConfigError naming it."""
    compiled = {}
    for name, patterns in categories.items():
        for i, p in enumerate(patterns):
            try:
                re.compile(p)
            except re.error as e:
                raise ConfigError(
                    f"safety.categories.{name}[{i}]: invalid regular expression {p!r}: {e}"
                ) from None
        try:
            compiled[name] = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        except re.error as e:  # e.g. a global flag like (?i) in the middle of the joined pattern
            raise ConfigError(f"safety.categories.{name}: patterns cannot be joined: {e}") from None
    return compiled


def active_categories(cfg: SafetyConfig) -> dict[str, list[str]]:
    """The built-in categories (when enabled) with the config's categories over them: a category
    named in the config replaces the built-in one, a new name adds one, [] turns one off."""
    base = dict(BUILTIN_CATEGORIES) if cfg.builtin_patterns else {}
    return {name: patterns for name, patterns in {**base, **cfg.categories}.items() if patterns}


# ---------------------------------------------------------------- the filter


@dataclass(frozen=True)
class Verdict:
    unsafe: bool
    categories: tuple[str, ...]  # rule categories that matched, plus "profanity"/"classifier"
    classifier_score: float | None = None  # the classifier's unsafe probability, when one runs


class SafetyFilter:
    """Rules, and optionally a classifier, over texts: `check(texts) -> [Verdict]`.

    `unsafe(prompts, responses) -> (B,)` is the PPO score penalty (ppo_penalty where a response
    is unsafe, else 0); PPO logs its batch mean as `safety/unsafe`.
    """

    def __init__(self, cfg: SafetyConfig):
        self.cfg = cfg
        self.patterns = compile_patterns(active_categories(cfg))
        self._classifier = None  # loaded on first use

    def rule_categories(self, text: str) -> tuple[str, ...]:
        """Categories whose patterns match a clause of `text` that is not a refusal."""
        parts = clauses(text, self.cfg.refusal_exemption)
        return tuple(name for name, pattern in self.patterns.items() if any(pattern.search(c) for c in parts))

    def check(self, texts: list[str]) -> list[Verdict]:
        scores = self.classifier_scores(texts) if self.cfg.classifier != "none" else [None] * len(texts)
        label = "profanity" if self.cfg.classifier == "profanity" else "classifier"
        verdicts = []
        for text, score in zip(texts, scores, strict=True):
            cats = self.rule_categories(text)
            if score is not None and score >= self.cfg.classifier_threshold:
                cats += (label,)
            verdicts.append(Verdict(bool(cats), cats, score))
        return verdicts

    def unsafe(self, prompts: list, responses: list[str]) -> torch.Tensor:
        """PPO score penalty (B,): ppo_penalty for each unsafe response, 0 otherwise. Named
        `unsafe` because PPO logs each penalty's mean as safety/<name>."""
        flags = [v.unsafe for v in self.check(list(responses))]
        return self.cfg.ppo_penalty * torch.tensor(flags, dtype=torch.float32)  # (B,)

    # ---------------------------------------------------------------- classifiers

    def classifier_scores(self, texts: list[str], batch_size: int = 16) -> list[float]:
        """The classifier's unsafe probability of each text."""
        if not texts:
            return []
        if self.cfg.classifier == "profanity":
            try:
                from profanity_check import predict_prob
            except ImportError:
                raise ConfigError(
                    "safety.classifier=profanity needs the alt-profanity-check package: pip install alt-profanity-check"
                ) from None
            return [float(p) for p in predict_prob(list(texts))]
        model, tokenizer, index = self._hf_classifier()
        device = next(model.parameters()).device
        scores = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(
                    list(texts[i : i + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=512,
                    return_tensors="pt",
                )
                logits = model(**enc.to(device)).logits.float()  # (B, L)
                if logits.shape[-1] == 1 or model.config.problem_type == "multi_label_classification":
                    probs = logits.sigmoid()  # independent labels (or one logit): each its own probability
                else:
                    probs = logits.softmax(-1)
                scores += probs[:, index].tolist()
        return scores

    def _hf_classifier(self):
        """(model, tokenizer, index of the unsafe label) of a HF sequence classifier directory."""
        if self._classifier is None:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            path = self.cfg.classifier
            if not Path(path).is_dir():
                raise ConfigError(
                    f"safety.classifier: {path!r} is not none, profanity, or a Hugging Face classifier directory"
                )
            tokenizer = AutoTokenizer.from_pretrained(path)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForSequenceClassification.from_pretrained(path).eval()
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tokenizer.pad_token_id
            model.to("cuda" if torch.cuda.is_available() else "cpu")
            labels = {str(name).lower(): int(i) for i, name in model.config.id2label.items()}
            n = model.config.num_labels
            if self.cfg.classifier_label is None:
                index = n - 1  # binary classifiers put the positive (unsafe) class last
            elif self.cfg.classifier_label.lower() in labels:
                index = labels[self.cfg.classifier_label.lower()]
            else:
                raise ConfigError(
                    f"safety.classifier_label: {self.cfg.classifier_label!r} is not a label of {path} "
                    f"(its labels: {', '.join(map(str, model.config.id2label.values()))})"
                )
            self._classifier = (model, tokenizer, index)
        return self._classifier


# ---------------------------------------------------------------- measuring


def precision_recall(predicted: list[bool], labels: list[bool]) -> dict[str, float | int | None]:
    """Precision, recall and F1 of `predicted` unsafe flags against `labels` (None where the
    denominator is 0), with the confusion counts."""
    if len(predicted) != len(labels):
        raise ValueError(f"{len(predicted)} predictions but {len(labels)} labels")
    tp = sum(p and y for p, y in zip(predicted, labels, strict=True))
    fp = sum(p and not y for p, y in zip(predicted, labels, strict=True))
    fn = sum(y and not p for p, y in zip(predicted, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "tn": len(labels) - tp - fp - fn, "n": len(labels)}  # fmt: skip


# ---------------------------------------------------------------- training data

FLAGS_FILE = "safety_flags.jsonl"  # one line per unsafe record: file, record index, field, categories
REPORT_FILE = "safety.json"  # {"safety/flagged", "safety/dropped", ...} of the stage's training data


def filter_records(records: list, flt: SafetyFilter, mode: str) -> tuple[list, list[dict]]:
    """(records kept, one flag per unsafe record). An SFT record is judged on its response, a
    preference pair on its chosen response: an unsafe rejected response is what a pair is for.
    mode: "flag" keeps every record, "drop" removes the unsafe ones."""
    field = "chosen" if records and hasattr(records[0], "chosen") else "response"
    verdicts = flt.check([getattr(r, field) for r in records])
    flags = [{"record": i, "field": field, "categories": list(v.categories), "classifier_score": v.classifier_score}
             for i, v in enumerate(verdicts) if v.unsafe]  # fmt: skip
    if mode == "drop":
        records = [r for r, v in zip(records, verdicts, strict=True) if not v.unsafe]
    return records, flags


def screen_training_data(records: list, cfg: SafetyConfig, source: str, output_dir: str | Path) -> list:
    """Flag or drop unsafe training records as cfg.training_data says; prints the counts and
    writes OUTPUT/safety.json (counts) and OUTPUT/safety_flags.jsonl (the records). Returns the
    records to train on."""
    out = Path(output_dir)
    if cfg.training_data == "off":
        for name in (FLAGS_FILE, REPORT_FILE):  # an earlier run's, which would no longer describe this one
            (out / name).unlink(missing_ok=True)
        return records
    kept, flags = filter_records(records, SafetyFilter(cfg), cfg.training_data)
    dropped = len(records) - len(kept)
    print(f"{source}: safety filter: {len(flags) - dropped} records flagged, {dropped} dropped")
    if not kept:
        raise DataError(f"{source}: the safety filter dropped every record (safety.training_data=drop)")
    out.mkdir(parents=True, exist_ok=True)
    action = "dropped" if cfg.training_data == "drop" else "flagged"
    (out / FLAGS_FILE).write_text(
        "".join(json.dumps({"file": str(source), **f, "action": action}) + "\n" for f in flags)
    )
    report = {"safety/flagged": len(flags) - dropped, "safety/dropped": dropped, "records": len(records),
              "file": str(source), "mode": cfg.training_data}  # fmt: skip
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    return kept
