"""Sans-I/O IMAP parsing: framing (receiver), primitives, and command grammars by state."""

from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.receiver import Frame, NeedLiteral, NeedMore, Receiver

__all__ = ["Frame", "NeedLiteral", "NeedMore", "ParseError", "Receiver"]
