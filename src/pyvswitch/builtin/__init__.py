"""Extensions that ship with pyvswitch, registered through the same entry-point group as third parties'."""
