"""course_lib: the small helper library of the course.

Import the module you need, e.g. ``from course_lib import layers``. Importing the
package itself is cheap: nothing heavy (matplotlib, ipywidgets) is loaded until a
module that needs it is used.
"""

__version__ = "0.1.0"
