"""Stories and matching: does an article cover a tracked story, how sure are we, and why.

    stories = load_stories(config["stories"], plugin_dirs=[...], base_dir=config_dir)
    matcher = Matcher(stories)
    for result in matcher.match(article): ...
"""
from monitor.matching.base import Facet, Name, Reference, Rule, RuleResult, RuleSpec, Story
from monitor.matching.document import Document
from monitor.matching.evaluate import EvalReport, evaluate_corpus
from monitor.matching.loader import RuleInfo, list_rules, load_stories
from monitor.matching.matcher import Matcher
from monitor.matching.profile import Profile, derive_profile, similarity

__all__ = ["load_stories", "Matcher", "list_rules", "evaluate_corpus", "EvalReport", "RuleInfo", "Story",
           "Name", "Facet", "Reference", "RuleSpec", "Rule", "RuleResult", "Document", "Profile",
           "derive_profile", "similarity"]
